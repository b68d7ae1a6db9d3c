"""The seven FER-2013 emotions and the mapping from folder names onto them."""

from __future__ import annotations

from emotrace.errors import ConfigError

#: FER-2013 class order: the index is the dataset's emotion code.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

_ALIASES: dict[str, str] = {
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "unhappy": "sad",
    "surprised": "surprise",
    "suprise": "surprise",
    "calm": "neutral",
    "none": "neutral",
}


class UnknownEmotionError(ConfigError):
    """A class name that cannot be mapped onto the seven emotions."""


def emotion_index(name: str) -> int:
    """Map a class-folder name (``angry``, ``Happy``, ``surprised``, ``0``...) to its FER code.

    Numeric names are FER-2013 codes (0=angry ... 6=neutral). Raises
    :class:`UnknownEmotionError` listing the accepted names otherwise.

    Args:
        name: a class name, an alias (``surprised``, ``fearful``...) or a code ``0``-``6``;
            case and surrounding spaces are ignored.

    Returns:
        The index into ``EMOTIONS``.

    Raises:
        UnknownEmotionError: the name maps onto none of the seven emotions.

    Example:
        >>> emotion_index("Happy"), emotion_index("surprised"), emotion_index("6")
        (3, 5, 6)
    """
    key = name.strip().lower()
    if key.isdigit() and int(key) < len(EMOTIONS):
        return int(key)
    key = _ALIASES.get(key, key)
    if key in EMOTIONS:
        return EMOTIONS.index(key)
    accepted = ", ".join(f"{i}={e}" for i, e in enumerate(EMOTIONS))
    raise UnknownEmotionError(
        f"unknown emotion class {name!r}; class names must be one of {accepted} "
        f"(case-insensitive; aliases such as {', '.join(sorted(_ALIASES)[:6])}... are accepted)"
    )
