"""Test control over HTTP, for an emulator running in another process (no auth).

``POST /_emulator/faults`` adds a rule (same fields as ``FaultInjector.add``),
``GET`` lists the rules with their hits (and ``held``: requests a ``hold`` rule holds),
``DELETE`` clears them (``DELETE /_emulator/faults/{id}`` removes one; ``POST
/_emulator/faults/{id}/release`` lets held requests go); ``GET /_emulator/stats`` returns the
request counts (and ``gc``: this process's collections by generation and the objects frozen out
of them), ``DELETE`` resets the counts.
"""

from __future__ import annotations

import gc
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from rahcp_prefect.testing.context import EmulatorContext, get_ctx

router = APIRouter(prefix="/_emulator")


class FaultSpec(BaseModel):
    plane: Literal["api", "data"]
    method: str | None = None
    path: str = ".*"
    status: int | None = Field(default=None, ge=100, le=599)
    delay: float = Field(default=0.0, ge=0)
    drop: bool = False
    damage: bool = False
    drop_answer: bool = False
    count: int | None = Field(default=1, ge=1)
    probability: float = Field(default=1.0, ge=0, le=1)
    duration: float | None = Field(default=None, gt=0)
    code: str | None = None
    hold: bool = False
    after: int = Field(default=0, ge=0)


@router.post("/faults", status_code=201)
async def add_fault(spec: FaultSpec, ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    try:
        rule = ctx.faults.add(**spec.model_dump())
    except ValueError as exc:  # bad regex, or data plane unavailable
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return rule.to_dict()


@router.get("/faults")
async def list_faults(ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    return {"faults": [r.to_dict() for r in ctx.faults.rules]}


@router.delete("/faults")
async def clear_faults(ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, int]:
    return {"cleared": ctx.faults.clear()}


@router.delete("/faults/{rule_id}")
async def remove_fault(rule_id: int, ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, int]:
    if not ctx.faults.remove(rule_id):
        raise HTTPException(status_code=404, detail=f"fault {rule_id} not found")
    return {"removed": rule_id}


@router.post("/faults/{rule_id}/release")
async def release_fault(rule_id: int, forward: bool = False, ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    """Let the requests a ``hold`` rule holds go: dropped, or handled with ``?forward=true``."""
    for rule in ctx.faults.rules:
        if rule.id == rule_id:
            rule.release(forward)
            return rule.to_dict()
    raise HTTPException(status_code=404, detail=f"fault {rule_id} not found")


@router.get("/stats")
async def stats(ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    counts = ctx.counter.snapshot()
    return {
        "counts": [
            {"plane": plane, "method": method, "route": route, "count": n}
            for (plane, method, route), n in sorted(counts.items())
        ],
        "gc": {
            "collections": [generation["collections"] for generation in gc.get_stats()],
            "frozen": gc.get_freeze_count(),
        },
    }


@router.delete("/stats")
async def reset_stats(ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, str]:
    ctx.counter.reset()
    return {"status": "reset"}
