"""Streaming text for one sequence: complete UTF-8 only, stop strings never leaked.

Two hold-backs, one after the other:
1. bytes: the tokenizer's stream decoder (``tok.decoder()``: feed(id) -> the characters that
   are complete) keeps the bytes of a character split across tokens (a Chinese character or an
   emoji is 3-4 bytes, often 2-4 byte-level tokens) until it is whole;
2. stop strings: of the decoded text, the longest tail that is a prefix of some stop string is
   held back, since the next token might complete the stop string (which must never reach the
   user). When a stop string appears, the text before it is released and the sequence ends.
   Which one, when several appear: the one that is complete first reading character by
   character (earliest end; on a tie the one starting earlier) — so the result does not depend
   on how the text was cut into tokens.

``feed`` returns the new safe text; ``finish`` flushes. The pieces concatenate to exactly the
text the non-streamed path returns (tok.decode of the reply, cut before the first stop string).
"""
from __future__ import annotations


def stop_cut(text: str, stops) -> int:
    """Where ``text`` ends under ``stops`` (see module docstring), or -1 if no stop string occurs."""
    best = None
    for s in stops:
        i = text.find(s)
        if i >= 0:
            key = (i + len(s), i)
            if best is None or key < best:
                best = key
    return -1 if best is None else best[1]


class StreamText:
    def __init__(self, tok, stop=()):
        self._dec = tok.decoder()
        self.stop = tuple(stop)
        self._pending = ""        # decoded but not yet released (possible stop-string start)
        self.stopped = False      # a stop string was found

    def _release(self, final: bool) -> str:
        text = self._pending
        if not self.stop:
            self._pending = ""
            return text
        cut = stop_cut(text, self.stop)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return text[:cut]
        if final:
            self._pending = ""
            return text
        keep = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), keep, -1):
                if text.endswith(s[:k]):
                    keep = k
                    break
        self._pending = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def feed(self, token_id: int) -> str:
        """Text released by this token ("" while held back)."""
        if self.stopped:
            return ""
        self._pending += self._dec.feed(int(token_id))
        return self._release(False)

    def finish(self) -> str:
        """The rest: an unfinished character becomes U+FFFD, as in tok.decode."""
        if self.stopped:
            return ""
        self._pending += self._dec.flush()
        return self._release(True)
