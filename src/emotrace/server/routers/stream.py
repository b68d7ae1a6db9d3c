"""``/v1/stream``: the webcam over a WebSocket."""

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from emotrace.data.images import ImageError
from emotrace.server.deps import Pool, Settings
from emotrace.server.gate import same_token
from emotrace.server.schemas import StreamError, StreamFrame

router = APIRouter(prefix="/v1")
#: Frames a second the stream's tracker assumes (a webcam sends about this many).
STREAM_FPS = 15.0


@router.websocket("/stream")
async def stream(websocket: WebSocket, pool: Pool, settings: Settings,
                 token: str | None = None) -> None:
    """Send JPEG frames (binary); each is answered with its faces (JSON, a
    :class:`~emotrace.server.schemas.StreamFrame`, or a
    :class:`~emotrace.server.schemas.StreamError`), track ids kept for the connection. Send the
    next frame after the answer: one frame in flight. A missing or wrong token closes the
    connection with code 1008 and the reason."""
    await websocket.accept()
    if settings.token is not None and not (token and same_token(token, settings.token)):
        await websocket.close(code=1008, reason="missing or wrong token: enter the server's "
                                                "access token at the top of the page")
        return
    video = pool.recognizer.video_stream(fps=STREAM_FPS)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                await _send_error(websocket, "send each frame as a binary message (JPEG or PNG "
                                             "bytes)")
                continue
            if len(data) > settings.max_frame_bytes:
                await _send_error(websocket, "frame too large")
                continue
            try:
                answer = await pool.run(data, pool.recognize_frame, video)
            except ImageError as error:
                await _send_error(websocket, str(error))
                continue
            await websocket.send_json(StreamFrame.model_validate(answer).model_dump(
                mode="json", exclude_unset=True))
    except WebSocketDisconnect:
        return


async def _send_error(websocket: WebSocket, error: str) -> None:
    await websocket.send_json(StreamError(error=error).model_dump(mode="json"))
