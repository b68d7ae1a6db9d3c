"""``POST /v1/predict``: the faces of one photo."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, UploadFile, status

from emotrace.data.images import ImageError, NotAnImageError
from emotrace.server.deps import Pool, Settings, authorised
from emotrace.server.schemas import PhotoPrediction, error_responses
from emotrace.server.uploads import display_name, read_upload

router = APIRouter(prefix="/v1", tags=["photos"], dependencies=[Depends(authorised)])


@router.post("/predict", response_model=PhotoPrediction, response_model_exclude_unset=True,
             responses=error_responses(408, 413, 415))
async def predict(file: Annotated[UploadFile, File(description="an image")], pool: Pool,
                  settings: Settings, annotate: bool = False) -> PhotoPrediction:
    """The faces of one photo: the JSON of one ``emotrace predict --json`` line; with
    ``annotate=true`` also the annotated image (``"annotated"``, a JPEG data URL)."""
    data = await read_upload(file, settings.max_image_bytes)
    name = display_name(file.filename, "upload")
    try:
        answer = await pool.run(data, pool.recognize_photo, name, annotate)
    except NotAnImageError as error:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(error)) from None
    except ImageError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    return PhotoPrediction.model_validate(answer)

