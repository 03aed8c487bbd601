"""The `aiapi` command: serve, read or rotate the key, ask, chat, list models, write Continue's config.

Typer builds the commands; rich prints. The server is reached over HTTP only (httpx), so this
package imports no server code: `aiapi serve` hands uvicorn the app factory by name.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.entrypoints.cli.chat import ChatSession, Conversation
from app.entrypoints.cli.client import GatewayClient
from app.entrypoints.cli.config import DEFAULT_TIMEOUT_SECONDS, DEFAULT_URL, ClientConfig
from app.entrypoints.cli.continue_config import (
    DEFAULT_PATH,
    gateway_entries,
    render_models_block,
    write_config,
)
from app.entrypoints.cli.errors import INTERRUPTED_EXIT, CliError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(name="aiapi", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Client of the AI API gateway. AIAPI_URL, ADMIN_SECRET and AIAPI_KEY configure it.")

LocalOption = Annotated[bool, typer.Option("--local", help="Use the local model (`local/...`).")]
ModelOption = Annotated[str | None, typer.Option("--model", "-m", help="A model id from `aiapi models`.")]
SystemOption = Annotated[str | None, typer.Option("--system", "-s", help="A system prompt.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer as it is.")]


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", envvar="AIAPI_URL", help="The server's URL.")] = DEFAULT_URL,
    admin_secret: Annotated[str | None, typer.Option(
        "--admin-secret", envvar="ADMIN_SECRET", show_default=False,
        help="The admin secret: reads the key (and fetches it when no key is given).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", envvar="AIAPI_KEY", show_default=False, help="The client key.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Client of the AI API gateway."""
    ctx.obj = ClientConfig(url=url, admin_secret=admin_secret or None, key=key or None, timeout=timeout)


def _client(ctx: typer.Context) -> GatewayClient:
    return GatewayClient(ctx.obj)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to listen on.")] = 8000,
) -> None:
    """Run the server (what `make serve` runs)."""
    import uvicorn  # only this command needs it

    # proxy_headers=False: the app decides itself whether to trust X-Forwarded-For (TRUST_PROXY_HEADERS).
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, proxy_headers=False)


def _expiry_line(expiry: str) -> str:
    try:
        when = datetime.fromisoformat(expiry)
    except (TypeError, ValueError):
        return f"expires {expiry}"
    left = int((when - datetime.now(UTC)).total_seconds())
    days, rest = divmod(max(left, 0), 86400)
    return (f"expires {when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
            f"(in {days} d {rest // 3600} h {rest % 3600 // 60} min)")


def _print_key(body: object) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("api_key"), str):
        raise CliError("the server's answer holds no api_key")
    out.out(body["api_key"])
    err.print(_expiry_line(str(body.get("expiry"))), style="dim", markup=False)


@app.command()
def key(
    ctx: typer.Context,
    export: Annotated[bool, typer.Option(
        "--export", help="Print `export OPENAI_API_KEY=... OPENAI_BASE_URL=...` for eval.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the current client key (GET /current-key, needs the admin secret)."""
    with _client(ctx) as client:
        response = client.current_key_response()
    if as_json:
        out.out(response.text)
        return
    body = response.json()
    if export:
        config: ClientConfig = ctx.obj
        out.out(f"export OPENAI_API_KEY={shlex.quote(str(body.get('api_key')))} "
                f"OPENAI_BASE_URL={shlex.quote(config.openai_base_url)}")
        return
    _print_key(body)


@app.command()
def rotate(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Replace the client key now (POST /rotate-key) and print the new one."""
    with _client(ctx) as client:
        response = client.rotate_key_response()
    if as_json:
        out.out(response.text)
        return
    _print_key(response.json())


def _model(client: GatewayClient, *, local: bool, model: str | None) -> str | None:
    if local and model:
        raise CliError("give --local or --model, not both")
    return client.local_model() if local else model


def _read_prompt(prompt: str | None) -> str:
    piped = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    text = "\n\n".join(part for part in (prompt, piped.strip()) if part and part.strip())
    if not text:
        raise CliError("no prompt: give one as an argument or pipe it on stdin", exit_code=2)
    return text


@app.command()
def ask(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Argument(
        help="The prompt; piped stdin is read too (after it, or as the whole prompt).")] = None,
    local: LocalOption = False,
    model: ModelOption = None,
    system: SystemOption = None,
) -> None:
    """Ask one question; the answer streams to stdout."""
    text = _read_prompt(prompt)
    conversation = Conversation(system=system)
    with _client(ctx) as client:
        conversation.model = _model(client, local=local, model=model)
        try:
            with client.open_chat_stream(conversation.messages(text), model=conversation.model) as stream:
                ended_with_newline = True
                for part in stream:
                    sys.stdout.write(part)
                    sys.stdout.flush()
                    ended_with_newline = part.endswith("\n")
                if not ended_with_newline:
                    sys.stdout.write("\n")
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            raise CliError("stopped", exit_code=INTERRUPTED_EXIT) from None


@app.command()
def chat(
    ctx: typer.Context,
    local: LocalOption = False,
    model: ModelOption = None,
    system: SystemOption = None,
) -> None:
    """An interactive chat: streamed answers, kept context, history, /help for commands."""
    with _client(ctx) as client:
        conversation = Conversation(system=system, model=_model(client, local=local, model=model))
        ChatSession(client, conversation, out).run()


@app.command()
def models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the models the server serves."""
    with _client(ctx) as client:
        listed = client.models()
    if as_json:
        out.out(json.dumps({"object": "list", "data": listed}, indent=2))
    elif out.is_terminal:
        table = Table("model", "served by")
        for item in listed:
            table.add_row(str(item.get("id")), str(item.get("owned_by", "")))
        out.print(table)
    else:
        for item in listed:  # tab-separated for `cut` (rich would expand the tab)
            sys.stdout.write(f"{item.get('id')}\t{item.get('owned_by', '')}\n")


@app.command("continue-config")
def continue_config(
    ctx: typer.Context,
    write: Annotated[bool, typer.Option(
        "--write", help="Update the file in place: the gateway entries' apiKey (or add them).")] = False,
    file: Annotated[Path, typer.Option(help="Continue's config file.")] = DEFAULT_PATH,
) -> None:
    """Print Continue's config.yaml model entries holding the current key, or --write them."""
    config: ClientConfig = ctx.obj
    with _client(ctx) as client:
        key_value = client.client_key()
        chat_model = client.upstream_model() or client.local_model()
        entries = gateway_entries(openai_base_url=config.openai_base_url, key=key_value,
                                  chat_model=chat_model, autocomplete_model=client.local_model())
    if not write:
        out.out(render_models_block(entries), end="")
        return
    path = file.expanduser().resolve()
    try:
        result = write_config(path, base_url=config.base_url, key=key_value, entries=entries)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot update {path}: {exc}") from None
    if result.updated:
        entries_word = "entry" if result.updated == 1 else "entries"
        err.print(f"{path}: new apiKey in {result.updated} gateway {entries_word}", markup=False)
    else:
        err.print(f"{path}: added {result.added} gateway entries", markup=False)


def main() -> None:
    """Entry point of the `aiapi` console script: failures are one line on stderr, never a traceback."""
    try:
        app(prog_name="aiapi")
    except CliError as exc:
        err.print(f"aiapi: {exc.message}", style="red", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT)
    except Exception as exc:  # a bug: still one line; AIAPI_DEBUG=1 shows the traceback
        if os.environ.get("AIAPI_DEBUG"):
            raise
        err.print(f"aiapi: unexpected error: {type(exc).__name__}: {exc}", style="red", markup=False)
        sys.exit(1)
