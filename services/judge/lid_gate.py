"""The language gate's source of truth: the lid service, through its typed client (gRPC, at the edge).

The client is synchronous; calls run in a worker thread so the judge's event loop keeps serving.
"""

from __future__ import annotations

import asyncio

from services.judge.records import Detection


class LidServiceIdentifier:
    """`identify(texts)` → the top prediction of each text from `polyglot.v1.LidService` at `address`."""

    def __init__(self, address: str, batch_size: int = 256, timeout: float = 60.0):
        from services.lid.client import LidClient

        self.client = LidClient(address, timeout=timeout)
        self.batch_size = batch_size

    def _identify(self, texts: list[str]) -> list[Detection]:
        out: list[Detection] = []
        for start in range(0, len(texts), self.batch_size):
            for result in self.client.identify(texts[start : start + self.batch_size], k=1):
                if result.error:
                    out.append(Detection("", error=result.error))
                elif not result.predictions:
                    out.append(Detection(""))
                else:
                    top = result.predictions[0]
                    out.append(Detection(top.language, top.raw_label, top.probability))
        return out

    async def identify(self, texts: list[str]) -> list[Detection]:
        return await asyncio.to_thread(self._identify, texts)

    async def aclose(self) -> None:
        self.client.close()
