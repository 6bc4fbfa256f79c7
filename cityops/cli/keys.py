"""API keys for `cityops api`."""

from __future__ import annotations

import typer

from cityops.cli.common import current_settings

app = typer.Typer(help="API keys for `cityops api`: one per integration, with scopes, stored hashed.",
                       no_args_is_help=True)


@app.command("issue")
def keys_issue(
    name: str = typer.Option(..., help="who holds it: the vendor, the department's system, the desk"),
    scope: list[str] = typer.Option(..., help="intake | operator | read | department:<unit code> (repeat)"),
    replace: bool = typer.Option(False, help="revoke the live keys of the same name first"),
    signed: bool = typer.Option(False, help="its requests must be signed (Standard Webhooks): prints the secret"),
) -> None:
    """Issue a key and print it once: only its hash is kept (CITYOPS_API_KEYS_FILE). A running api
    takes it on its next request."""
    from pydantic import ValidationError

    from infra.api import keys

    path = current_settings().resolved_api_keys_file()
    try:
        key, token, signing_secret = keys.issue(path, name, scope, replace=replace, signed=signed)
    except ValidationError as exc:
        typer.echo(f"cannot issue the key: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"issued key {key.key_id} ({key.name}: {', '.join(key.scopes)}) in {path}; it is shown only now:", err=True)
    typer.echo(token)
    if signing_secret:
        typer.echo("signing secret (sign every request with it; `cityops keys rotate` rolls it):", err=True)
        typer.echo(signing_secret)


@app.command("list")
def keys_list() -> None:
    """The keys in the file: id, name, scopes, when issued and revoked (never a secret)."""
    from infra.api import keys

    for key in keys.read(current_settings().resolved_api_keys_file()).keys:
        revoked = f"  revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
        signed = f"  signed ({len(key.signing_secrets)} secret(s))" if key.signing_secrets else ""
        typer.echo(f"{key.key_id}  {key.name}  {','.join(key.scopes)}  issued {key.created_at:%Y-%m-%d %H:%M}"
                   f"{signed}{revoked}")


@app.command("rotate")
def keys_rotate(key_id: str = typer.Argument(..., help="the key id (`cityops keys list`)")) -> None:
    """A new signing secret for a key; the previous one stays valid beside it until the next rotation."""
    from infra.api import keys

    try:
        secret = keys.rotate_signing_secret(current_settings().resolved_api_keys_file(), key_id)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    typer.echo("new signing secret (the previous one stays valid until the next rotation):", err=True)
    typer.echo(secret)


@app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key id (`cityops keys list`)")) -> None:
    """Revoke a key: the api refuses it from its next request on."""
    from infra.api import keys

    try:
        key = keys.revoke(current_settings().resolved_api_keys_file(), key_id)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"revoked {key.key_id} ({key.name})")
