"""GPT-2's byte <-> printable-character table, used by HF tokenizer.json and GPT-2 vocab.json.

Those files store tokens as strings, so each of the 256 byte values is shown as one visible
character: printable Latin-1 bytes (! .. ~, ¡ .. ¬, ® .. ÿ) stand for themselves, the other 68
bytes (control characters, space, ...) are shifted to U+0100 and up, in byte order. A space is
therefore "Ġ" (U+0120) and a newline "Ċ" (U+010A).
"""
from __future__ import annotations


def _build():
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, shifted = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


BYTE_TO_CHAR: dict[int, str] = _build()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in BYTE_TO_CHAR.items()}


def bytes_to_token(data: bytes) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in data)


def token_to_bytes(token: str) -> bytes | None:
    """None when ``token`` has a character outside the table (then it is not a byte-level token)."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return None
