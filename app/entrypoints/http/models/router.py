"""`GET /v1/models` and `GET /v1/models/{id}`, also at the root."""
# No `from __future__ import annotations` here: FastAPI reads the
# Annotated[..., Depends(...)] markers from the live signature.

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from app.domain.errors import ModelNotFound
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.deps import ChatServiceDep
from app.entrypoints.http.errors import ERROR_RESPONSES
from app.entrypoints.http.models.wire import Model, ModelList
from app.entrypoints.http.wire import model_response

router = APIRouter(dependencies=[Depends(require_client_key)], responses=ERROR_RESPONSES,
                   tags=["OpenAI-compatible"])


@router.get("/v1/models", response_model=ModelList, summary="Models a client may name")
@router.get("/models", response_model=ModelList, include_in_schema=False)
async def list_models(service: ChatServiceDep) -> Response:
    """The configured Groq models (when a key is set) and the local model."""
    return model_response(ModelList.of(service.models()))


@router.get("/v1/models/{model_id:path}", response_model=Model, summary="One model")
@router.get("/models/{model_id:path}", response_model=Model, include_in_schema=False)
async def get_model(model_id: Annotated[str, Path(description="Model id; may contain `/`.")],
                    service: ChatServiceDep) -> Response:
    """The model object, or 404 `model_not_found`."""
    for model in service.models():
        if model.id == model_id:
            return model_response(Model.of(model))
    raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
