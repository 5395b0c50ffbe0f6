"""``perdure streams tail``: print a run's stream chunks, stored or live."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import click

from .._primitives import DEFAULT_STREAM
from .._serialization import encode
from .._streams import decode_chunk
from ..errors import RunNotFoundError
from ..web import _views as views
from ..world import CHUNK_EOF, World
from ._common import CliError, open_engine
from ._output import dumps, echo_json_line


@click.group()
def streams() -> None:
    """Read runs' streams."""


def _text(chunk: Any) -> str:
    """Bytes as text when they are UTF-8, else their repr; strings as they are;
    other values as JSON."""
    if isinstance(chunk, bytes):
        try:
            return chunk.decode("utf-8")
        except UnicodeDecodeError:
            return repr(chunk)
    if isinstance(chunk, str):
        return chunk
    return dumps(_jsonable(chunk))


def _jsonable(chunk: Any) -> Any:
    return encode(chunk)


def _as_json(index: int, chunk: Any) -> dict[str, Any]:
    if isinstance(chunk, bytes):
        return {"index": index, "type": "bytes", "base64": base64.b64encode(chunk).decode()}
    return {"index": index, "type": "value", "value": _jsonable(chunk)}


def _stored(world: World, run_id: str, name: str, start: int) -> list[Any]:
    if start < 0:
        start = max(0, world.stream_info(run_id, name).chunks + start)
    found: list[Any] = []
    while True:
        chunks = world.read_chunks(run_id, name, start=start + len(found), limit=1000)
        data = [c for c in chunks if c.kind != CHUNK_EOF]
        found.extend((c.index, decode_chunk(c)) for c in data)
        if len(data) < len(chunks) or len(chunks) < 1000:
            return found


@streams.command("tail")
@click.argument("run_id")
@click.option("--name", default=DEFAULT_STREAM, show_default=True, help="The stream's name.")
@click.option("--start-index", type=int, default=0, show_default=True,
              help="First chunk; negative counts back from the end (-10: the last ten).")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new chunks until the stream closes or the run ends.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object a line: {"index", "type", "value" or "base64"}.')
@click.pass_context
def tail(ctx: click.Context, run_id: str, name: str, start_index: int, follow: bool,
         as_json: bool) -> None:
    """Print the chunks of a run's stream (bytes as text when UTF-8, else repr)."""
    engine = open_engine(ctx)
    try:
        try:
            views.get_run_record(engine.world, run_id)
        except (RunNotFoundError, ValueError):
            raise CliError(f"no run {run_id!r}") from None
        if follow:
            start = start_index
            if start < 0:
                start = max(0, engine.world.stream_info(run_id, name).chunks + start)
            items: Iterator[tuple[int, Any]] = enumerate(
                engine.get_run(run_id).stream(name, start), start)
        else:
            items = iter(_stored(engine.world, run_id, name, start_index))
        for index, chunk in items:
            if as_json:
                echo_json_line(_as_json(index, chunk))
            else:
                click.echo(_text(chunk))
    except KeyboardInterrupt:
        pass
    finally:
        engine.shutdown()


COMMANDS = [streams]
