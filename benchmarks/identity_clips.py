"""Test clips with known identities, for ``benchmarks/identity.py`` (re-identification).

Faces are LFW photos of ``../shared/data/realworld/muxspace-dev/`` (files ``Person_Name_NNNN``:
one person, several photos), pasted on plain textured backgrounds that differ per shot. A clip
is a list of shots; in each shot, people sit in seats (position, face size), sway a few pixels,
may leave and come back, may be hidden by a passing occluder. After a cut people are re-seated
and shown with a different photo of themselves. Clips are written at run time to a temporary
folder (the photos are never copied into the repository), with their ground truth: per frame,
each visible person's label and face box, and the frames where a shot starts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

MUXSPACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld" / \
    "muxspace-dev"
SIZE = (1280, 720)
FPS = 30.0


@dataclass
class Seat:
    """One person in one shot: where the face sits, its side (px), when it is away/hidden."""

    person: str
    x: int
    y: int
    side: int
    away: tuple[int, int] | None = None      # frames of the shot [start, end) the person is out
    hidden: tuple[int, int] | None = None    # frames an occluder slides over the face


@dataclass
class Shot:
    frames: int
    seats: list[Seat]
    background: tuple[int, int, int]
    photo: int = 0                             # which photo of each person this shot shows
    brightness_ramp: bool = False              # a slow lighting change (not a cut)


@dataclass
class Clip:
    name: str
    shots: list[Shot]
    people: list[str] = field(default_factory=list)


def people_with_photos(minimum: int = 3) -> dict[str, list[Path]]:
    """LFW names in the dev set with at least ``minimum`` photos (sorted, deterministic)."""
    photos: dict[str, list[Path]] = {}
    for path in sorted(MUXSPACE.glob("*/*.jpg")):
        stem = path.stem
        if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit():
            photos.setdefault(stem[:-5], []).append(path)
    return {name: sorted(paths, key=lambda p: p.name) for name, paths in sorted(photos.items())
            if len(paths) >= minimum}


def _background(color: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    width, height = SIZE
    noise = rng.normal(0, 12, (height // 8, width // 8, 1)).astype(np.float32)
    noise = cv2.resize(noise, SIZE, interpolation=cv2.INTER_CUBIC)[..., None]
    ramp = np.linspace(-25, 25, height, dtype=np.float32)[:, None, None]
    return np.clip(np.array(color, np.float32) + noise + ramp, 0, 255).astype(np.uint8)


def write_clip(clip: Clip, folder: Path, photos: dict[str, list[Path]]) -> tuple[Path, dict]:
    """Write ``clip`` as MP4 into ``folder``; return its path and ground truth
    ``{"frames": [[(label, (x, y, w, h)), ...] per frame], "cuts": [frame, ...]}``."""
    path = folder / f"{clip.name}.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    truth: dict = {"frames": [], "cuts": []}
    cache: dict[tuple[str, int, int], np.ndarray] = {}
    frame_index = 0
    for shot_index, shot in enumerate(clip.shots):
        if shot_index:
            truth["cuts"].append(frame_index)
        background = _background(shot.background, shot_index)
        for t in range(shot.frames):
            canvas = background.copy()
            if shot.brightness_ramp:
                gain = 1.0 + 0.35 * min(1.0, t / max(1, shot.frames - 1))
                canvas = np.clip(canvas.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            visible = []
            for k, seat in enumerate(shot.seats):
                if seat.away and seat.away[0] <= t < seat.away[1]:
                    continue
                key = (seat.person, shot.photo, seat.side)
                if key not in cache:
                    options = photos[seat.person]
                    image = cv2.imread(str(options[shot.photo % len(options)]))
                    cache[key] = cv2.resize(image, (seat.side, seat.side),
                                            interpolation=cv2.INTER_AREA)
                face = cache[key]
                dx = round(6 * np.sin(2 * np.pi * (t + 17 * k) / 90))  # a gentle sway
                x, y = seat.x + dx, seat.y
                canvas[y:y + seat.side, x:x + seat.side] = face
                box = (x, y, seat.side, seat.side)
                if seat.hidden and seat.hidden[0] <= t < seat.hidden[1]:
                    # an occluder (another head, a raised hand) passes over the face
                    progress = (t - seat.hidden[0]) / max(1, seat.hidden[1] - seat.hidden[0])
                    left = round(x - seat.side + progress * 3 * seat.side)
                    cv2.rectangle(canvas, (left, y - 10), (left + seat.side, y + seat.side + 10),
                                  (40, 40, 60), -1)
                    covered = max(0, min(left + seat.side, x + seat.side) - max(left, x))
                    if covered > 0.5 * seat.side:
                        continue  # mostly hidden: nobody should be reported there
                visible.append((seat.person, box))
            writer.write(canvas)
            truth["frames"].append(visible)
            frame_index += 1
    writer.release()
    return path, truth


def _grid(people: list[str], columns: int, side: int, top: int = 80, gap: int = 60,
          left: int = 60) -> list[Seat]:
    return [Seat(p, left + (i % columns) * (side + gap), top + (i // columns) * (side + gap), side)
            for i, p in enumerate(people)]


def clips(seed: int = 0) -> list[Clip]:
    """The benchmark's clips (deterministic for a seed), hardest last."""
    pool = list(people_with_photos())
    random.Random(seed).shuffle(pool)
    take = iter(pool)

    def pick(n: int) -> list[str]:
        return [next(take) for _ in range(n)]

    result = []
    # 1. Leave and return: one shot, two people leave (90 and 60 frames) and come back.
    group = pick(4)
    seats = _grid(group, 4, 150, top=250, gap=140)
    seats[1].away, seats[3].away = (60, 150), (120, 180)
    result.append(Clip("leave-return", [Shot(240, seats, (120, 140, 110))], group))
    # 2. Occlusion: an occluder passes over three faces in turn; a slow lighting change.
    group = pick(5)
    seats = _grid(group, 5, 120, top=280, gap=110)
    seats[0].hidden, seats[2].hidden, seats[4].hidden = (30, 90), (100, 160), (170, 230)
    result.append(Clip("occlusion", [Shot(240, seats, (90, 110, 140), brightness_ramp=True)],
                       group))
    # 3. Re-seating after cuts: six people, three shots, new seats and new photos each time.
    group = pick(6)
    shots = []
    for index in range(3):
        order = group[:] if index == 0 else random.Random(seed + index).sample(group, len(group))
        shots.append(Shot(90, _grid(order, 3, 130 + 20 * index, top=70, gap=150, left=150),
                          [(110, 130, 150), (60, 90, 70), (150, 120, 100)][index], photo=index))
    result.append(Clip("reseat-cuts", shots, group))
    # 4. Small faces: 12 people with 56-64 px faces (YuNet misses these tight LFW crops below
    # about 56 px: they have no hair or neck around them), a cut with re-seating.
    group = pick(12)
    shots = []
    for index in range(2):
        order = group if index == 0 else random.Random(seed + 7).sample(group, len(group))
        seats = _grid(order, 6, 56 + 8 * index, top=200, gap=130, left=90)
        seats[5].away = (40, 100)
        shots.append(Shot(120, seats, [(100, 100, 100), (140, 110, 90)][index], photo=index))
    result.append(Clip("small-faces", shots, group))
    # 5. Hardest: ten people, four shots (a close-up of three, the room, a new angle, the room
    # again), re-seating, a person away, occlusion, a new person in the last shot.
    group = pick(11)
    regulars, newcomer = group[:10], group[10]
    shots = []
    close = _grid(regulars[:3], 3, 220, top=200, gap=140, left=120)
    shots.append(Shot(75, close, (80, 80, 110), photo=0))
    room = _grid(regulars, 5, 80, top=150, gap=150, left=80)
    room[2].away, room[7].hidden = (20, 70), (30, 80)
    shots.append(Shot(120, room, (130, 140, 120), photo=1))
    angle = _grid(random.Random(seed + 11).sample(regulars, 10), 5, 100, top=110, gap=130,
                  left=100)
    angle[4].hidden = (40, 90)
    shots.append(Shot(90, angle, (70, 100, 90), photo=2))
    again = _grid(random.Random(seed + 13).sample(regulars[1:], 9) + [newcomer], 5, 90, top=140,
                  gap=140, left=90)
    again[0].away = (30, 60)
    shots.append(Shot(90, again, (120, 110, 140), photo=0))
    result.append(Clip("hardest", shots, group))
    return result


def intel_cut_sequence(videos: list[Path]) -> tuple[list[np.ndarray], list[int]]:
    """Cuts spliced into real footage: each clip's first half, then its second half seen from
    "another angle" (a 1.8x zoom on part of the frame: same scene, same colours), then the next
    clip. Returns the frames and the indices where a shot starts."""
    from emotrace.inference.sources import open_source

    frames: list[np.ndarray] = []
    cuts: list[int] = []
    for video in videos:
        with open_source(video) as source:
            images = [frame.image for frame in source.frames(1)]
        half = len(images) // 2
        if frames:
            cuts.append(len(frames))
        frames += images[:half]
        cuts.append(len(frames))
        height, width = images[0].shape[:2]
        crop_w, crop_h = int(width / 1.8), int(height / 1.8)
        x, y = int(0.2 * (width - crop_w)), int(0.3 * (height - crop_h))
        frames += [cv2.resize(image[y:y + crop_h, x:x + crop_w], (width, height))
                   for image in images[half:]]
    return frames, cuts
