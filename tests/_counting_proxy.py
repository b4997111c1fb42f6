"""A TCP relay that counts the chat requests it forwards (the distributed load tests' witness)."""

from __future__ import annotations

import asyncio
import threading


class CountingProxy:
    """A TCP relay in front of the gateway that counts the chat requests it forwards."""

    MARK = b"POST /v1/chat/completions "

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.count = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.url = ""

    def start(self) -> None:
        """Listen on a free port of 127.0.0.1 (``self.url``)."""
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self.loop
        ).result(5)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        """Close the listener and every relayed connection, then end the loop's thread."""

        async def close() -> None:
            assert self.server is not None
            self.server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(reader, up_writer, count=True), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool = False
    ) -> None:
        tail = b""
        try:
            while data := await reader.read(65536):
                if count:
                    window = tail + data
                    self.count += window.count(self.MARK)
                    tail = window[-(len(self.MARK) - 1) :]
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
