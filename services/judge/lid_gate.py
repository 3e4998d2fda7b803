"""The language gate's source of truth: the lid service, through its asyncio client (gRPC, at the edge)."""

from __future__ import annotations

from services.judge.records import Detection
from services.lid.client import AsyncLidClient


class LidServiceIdentifier:
    """`identify(texts)` → the top prediction of each text from `polyglot.v1.LidService` at `address`."""

    def __init__(self, address: str, batch_size: int = 256, timeout: float = 60.0):
        self.address = address
        self.batch_size = batch_size
        self.timeout = timeout
        # Made on first use: a grpc.aio channel belongs to the event loop it is made in, and the judge is
        # built before the server's loop runs.
        self._client: AsyncLidClient | None = None

    async def identify(self, texts: list[str]) -> list[Detection]:
        if self._client is None:
            self._client = AsyncLidClient(self.address, timeout=self.timeout)
        out: list[Detection] = []
        for start in range(0, len(texts), self.batch_size):
            for result in await self._client.identify(texts[start : start + self.batch_size], k=1):
                if result.error:
                    out.append(Detection("", error=result.error))
                elif not result.predictions:
                    out.append(Detection(""))
                else:
                    top = result.predictions[0]
                    out.append(Detection(top.language, top.raw_label, top.probability))
        return out

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
