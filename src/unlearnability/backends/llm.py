"""A thin OpenAI-compatible chat client for the book's paper-scale LLM paths.

The paper used hosted models for two analyses: GPT-5-mini as a reasoning-quality judge
(§5.2, `analysis.judge`) and GPT-5 / Gemini-2.5-pro to generate and cross-check augmented
problems (§5.3, `backends.llm_augment`). Both talk to any server with the OpenAI chat
completions API (OpenAI itself, vLLM, SGLang, a gateway) through this module:

    cfg = LLMConfig(base_url="https://api.openai.com/v1", model="gpt-5-mini")   # config.LLMConfig
    text = chat(cfg, [{"role": "user", "content": "2+2?"}])            # -> str
    texts = chat_many(cfg, [msgs1, msgs2, ...])                          # (index, str | LLMError) ...

The settings are the config's `llm` section (`config.LLMConfig`, checked at load like every
section; `unlearn config llm` lists them with their help).

Secrets: `LLMConfig` holds the *name* of the environment variable with the API key
(`api_key_env`, default OPENAI_API_KEY), never the key. The key is read from the
environment when a client is built and handed straight to `openai.OpenAI`; no dataclass,
record, report or repr in the library holds it. Every error this module raises passes
through `redact`, which removes every key this process has read (and anything that looks
like a bearer token or an `sk-...` key), and is raised outside the SDK's `except` block so
the SDK exception (whose request object carries the Authorization header) is not chained
to it.

Retries: connection errors, timeouts, 408 / 409 / 429 and 5xx replies are retried up to
`max_retries` times with exponential backoff (`retry_backoff` * 2^attempt seconds, capped
at 30 s); the SDK's own retry loop is switched off so the count and the delays are ours.
Any other error, and a reply without text, is an `LLMError` at once.

Simplifications: no streaming, no tool calls, one choice per request; no Retry-After
handling; the token limit is sent as `max_completion_tokens` (what GPT-5 models require
and vLLM / SGLang accept) unless `max_tokens_field` says otherwise; `temperature=None`
sends no temperature (GPT-5 models accept only their default).
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from typing import Any, Iterable, Iterator, Sequence

from unlearnability.config import LLMConfig

Messages = Sequence[dict[str, str]]

_SECRETS: set[str] = set()  # every API key read by this process, for `redact` (never printed)
_TOKEN_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;}]+"),  # Authorization: Bearer <key>
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),  # OpenAI-style keys
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}&]+"),  # api_key=..., "api-key": "..."
    re.compile(r"(?<=//)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
)
REDACTED = "[REDACTED]"
MIN_SECRET = 8  # shorter values are placeholders, not secrets (see redact)
TRANSIENT_STATUS = {408, 409, 429}  # and every 5xx


class LLMError(RuntimeError):
    """A failed chat request (its message is already redacted)."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(redact(message))
        self.transient = transient


def describe(cfg: LLMConfig) -> dict[str, Any]:
    """The config as a plain dict for reports (base_url redacted; no key in it anyway)."""
    d = asdict(cfg)
    d["base_url"] = redact(cfg.base_url)
    return d


def require_server(cfg: LLMConfig) -> None:
    """An LLMError naming the keys when `cfg` has no server or model (the llm section's defaults)."""
    missing = [k for k in ("base_url", "model") if not getattr(cfg, k)]
    if missing:
        raise LLMError(f"{' and '.join('llm.' + k for k in missing)} {'is' if len(missing) == 1 else 'are'} not "
                       "set: name the OpenAI-compatible server and its model, "
                       "e.g. LLMConfig(base_url='https://api.openai.com/v1', model='gpt-5-mini') or "
                       "--base-url URL --model NAME")


def redact(text: Any, patterns: bool = True) -> str:
    """`text` as a string with every API key this process has read replaced by [REDACTED];
    with `patterns` (errors, logs) also bearer tokens, `sk-` keys, `api_key=...` values and
    URL passwords. Records of model text use patterns=False (a math solution may say
    "bearer"). Keys shorter than MIN_SECRET characters ("none", "EMPTY": placeholders for
    local servers) are not secrets and are left alone."""
    s = str(text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        s = s.replace(secret, REDACTED)
    if patterns:
        for pat in _TOKEN_PATTERNS:
            s = pat.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, s)
    return s


def api_key(cfg: LLMConfig) -> str:
    """The key from the environment variable `cfg.api_key_env`; a clear error when unset."""
    name = cfg.api_key_env
    value = os.environ.get(name, "")
    if not value.strip():
        raise LLMError(f"environment variable {name} is not set (or empty): it must hold the API key "
                       f"for {redact(cfg.base_url)} (export {name}=...; for a local server without "
                       f"auth any value works, e.g. {name}=none)")
    if len(value) >= MIN_SECRET:
        _SECRETS.add(value)
    return value


def make_client(cfg: LLMConfig):
    """An `openai.OpenAI` client for cfg (SDK retries off: `chat` retries itself).
    Keep it in a local variable: it holds the key."""
    from openai import OpenAI

    require_server(cfg)
    return OpenAI(base_url=cfg.base_url, api_key=api_key(cfg), timeout=cfg.timeout, max_retries=0)


def _request_args(cfg: LLMConfig, messages: Messages, json_mode: bool) -> dict[str, Any]:
    """The keyword arguments of one chat.completions.create call."""
    require_server(cfg)
    kw: dict[str, Any] = {"model": cfg.model, "messages": [dict(m) for m in messages]}
    if cfg.temperature is not None:
        kw["temperature"] = cfg.temperature
    if cfg.max_tokens is not None:
        if cfg.max_tokens_field == "max_completion_tokens":
            kw["max_completion_tokens"] = cfg.max_tokens
        else:
            kw["extra_body"] = {cfg.max_tokens_field: cfg.max_tokens}
    if json_mode:
        kw["response_format"] = {"type": "json_object"}
    return kw


def _classify(exc: BaseException) -> tuple[bool, str]:
    """(transient?, redacted description) of an exception raised by the SDK."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        return status in TRANSIENT_STATUS or status >= 500, f"HTTP {status}: {exc}"
    return False, f"{type(exc).__name__}: {exc}"


def _content(resp: Any) -> str:
    """The text of the first choice; ValueError when the reply has none."""
    choices = getattr(resp, "choices", None)
    if not choices:
        raise ValueError(f"no choices in the reply: {str(resp)[:300]}")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str) or not text.strip():
        why = getattr(choices[0], "finish_reason", None)
        hint = " (cut at the token limit: raise max_tokens)" if why == "length" else ""
        raise ValueError(f"no text in the reply's first choice, finish_reason={why!r}{hint}: {str(choices[0])[:300]}")
    return text


def chat(cfg: LLMConfig, messages: Messages, *, client: Any = None, json_mode: bool = False) -> str:
    """The assistant's reply text to `messages` (any API key in it replaced). Retries transient errors (see module doc);
    raises LLMError (redacted, naming the model and server) otherwise. Pass `client` (from
    `make_client`) to reuse connections across calls."""
    client = client if client is not None else make_client(cfg)
    where = f"model {cfg.model!r} at {redact(cfg.base_url)}"
    kw = _request_args(cfg, messages, json_mode)
    problem = ""
    for attempt in range(cfg.max_retries + 1):
        try:
            resp = client.chat.completions.create(**kw)
            return redact(_content(resp), patterns=False)  # a server that echoes the key gets it removed
        except ValueError as e:  # malformed 200 reply: not transient
            problem, transient = f"malformed reply: {e}", False
        except Exception as e:  # noqa: BLE001 - classified, redacted, re-raised below
            transient, problem = _classify(e)
        if not transient or attempt == cfg.max_retries:
            break
        time.sleep(min(30.0, cfg.retry_backoff * 2 ** attempt))
    # raised here, outside the except blocks: the SDK exception (its request holds the
    # Authorization header) is neither the cause nor the context of ours
    tries = f" after {attempt + 1} attempts" if attempt else ""
    raise LLMError(f"chat request to {where} failed{tries}: {problem}", transient=transient)


def chat_many(cfg: LLMConfig, conversations: Iterable[Messages], *, json_mode: bool = False,
              client: Any = None) -> Iterator[tuple[int, str | LLMError]]:
    """(index, reply text or LLMError) for each conversation, in completion order, with
    `cfg.concurrency` requests in flight. Errors are yielded, not raised, so one failed
    request does not lose the others; the caller decides."""
    convs = list(conversations)
    if not convs:
        return
    client = client if client is not None else make_client(cfg)
    with ThreadPoolExecutor(max_workers=max(1, cfg.concurrency)) as pool:
        futures = {pool.submit(_chat_or_error, cfg, m, client, json_mode): i for i, m in enumerate(convs)}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            for fut in futures:
                fut.cancel()


def _chat_or_error(cfg: LLMConfig, messages: Messages, client: Any, json_mode: bool) -> str | LLMError:
    try:
        return chat(cfg, messages, client=client, json_mode=json_mode)
    except LLMError as e:
        return e


# ----- JSON in model replies -----

# LaTeX commands whose backslash a model often leaves single inside a JSON string, where
# \b \f \n \r \t \u would silently become control characters ("\frac" -> form feed + "rac")
_LATEX_AT_ESCAPE = re.compile(
    r"(?<!\\)((?:\\\\)*)\\(?=(?:b(?:eta|inom|oxed|ar|egin|ig+[lr]?|mod|ot|ullet|f|m|ackslash)|"
    r"f(?:rac|box|latten|orall)|"
    r"n(?:eq?|abla|u|ot|leq|geq|mid|cong|subseteq|ewline|eg)|"
    r"r(?:ight|ho|angle|floor|ceil|m|ightarrow)|"
    r"t(?:imes|ext(?:bf|it)?|heta|an|o|op|riangle|au|frac|ilde|extstyle|herefore)|"
    r"u(?:nderline|nderbrace|psilon|p(?:arrow)?|nion)"
    r")(?![A-Za-z]))")
_BAD_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\(?![\\\"/bfnrt]|u[0-9a-fA-F]{4})")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _fix_escapes(text: str) -> str:
    """Double the single backslashes of LaTeX commands and of invalid JSON escapes."""
    text = _LATEX_AT_ESCAPE.sub(lambda m: m.group(1) + "\\\\", text)
    return _BAD_ESCAPE.sub(lambda m: m.group(1) + "\\\\", text)


def parse_json_reply(text: str) -> Any:
    """The first JSON object in a model's reply: the whole text, a ```json fence, or the first
    `{...}` that parses; LaTeX backslashes left single are repaired. ValueError when none."""
    candidates = [text.strip()] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    decoder = json.JSONDecoder()
    for cand in candidates:
        for variant in (_fix_escapes(cand), cand):
            try:
                return json.loads(variant)
            except json.JSONDecodeError:
                pass
    for variant in (_fix_escapes(text), text):
        for m in re.finditer(r"\{", variant):
            try:
                obj, _ = decoder.raw_decode(variant, m.start())
                return obj
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON object in the reply: {shorten(text)!r}")


def shorten(text: str, n: int = 200) -> str:
    """The redacted first n characters of text, with an ellipsis when cut."""
    s = redact(text)
    return s if len(s) <= n else s[:n] + "..."
