# distutils: language = c++
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fast byte-level BPE: the same algorithms as bpe_ref.py / pretokenize.py, in Cython.

* ``build_class_table``: pretokenize.class_table() in C (7 ms instead of ~0.1 s).
* ``Splitter``: the pre-tokenizer scanner over the code points of a str (no regex engine; one
  table lookup per character, ~250 MB/s), plus word counting for training in a C hash table.
* ``train_merges``: BPE training with incremental pair counts. Each pair keeps its count and the
  list of places it occurs; a merge visits only those places and updates the counts of the
  neighbouring pairs it destroys and creates. A max-heap keyed (count, -(left, right)) gives the
  best pair with the same tie-break as the reference; heap entries are lazy (checked against the
  live count when popped, re-pushed if the count dropped).
* ``Encoder``: pre-tokenize, look each piece up in a cache (a C hash table keyed by the piece's
  code points -> ids), and on a miss run the merge-rank loop over a C int buffer with an
  open-addressing pair table. The output list is built once at the end from shared int objects.
* ``join_token_bytes``: decoding, one memcpy per token.
"""
from cython.operator cimport dereference as deref
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libcpp.algorithm cimport sort
from libcpp.queue cimport priority_queue
from libcpp.unordered_map cimport unordered_map
from libcpp.utility cimport pair
from libcpp.vector cimport vector
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_Append, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.object cimport PyObject


cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    uint32_t PyUnicode_READ(int kind, const void* data, Py_ssize_t index) nogil
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    int Py_UNICODE_ISALPHA(uint32_t ch) nogil
    int Py_UNICODE_ISNUMERIC(uint32_t ch) nogil
    object PyUnicode_Substring(object, Py_ssize_t, Py_ssize_t)
    object PyUnicode_FromKindAndData(int kind, const void* buffer, Py_ssize_t size)


# character classes, as in pretokenize.py
cdef enum:
    C_OTHER = 0
    C_LETTER = 1
    C_NUMBER = 2
    C_SPACE = 3
    C_CJK = 4

def build_class_table(list white_space, list cjk_ranges):
    """The class table of pretokenize.class_table(), built in C in a few ms instead of ~0.1 s.

    Uses CPython's own Unicode database through its C macros: ISALPHA is exactly the categories
    L* (Lu Ll Lt Lm Lo), and a non-letter with ISNUMERIC is exactly N* (Nd Nl No) —
    tests/test_bpe.py checks the whole table against the unicodedata-built reference.
    """
    cdef bytearray table = bytearray(0x110000)
    cdef unsigned char* t = table
    cdef uint32_t cp, lo, hi
    for cp in range(0x110000):
        if Py_UNICODE_ISALPHA(cp):
            t[cp] = C_LETTER
        elif Py_UNICODE_ISNUMERIC(cp):
            t[cp] = C_NUMBER
    for cp in white_space:
        t[cp] = C_SPACE
    for lo, hi in cjk_ranges:
        for cp in range(lo, hi + 1):
            if t[cp] == C_LETTER:
                t[cp] = C_CJK
    return bytes(table)


cdef struct Cfg:
    const uint8_t* table
    bint ci            # case-insensitive contractions
    Py_ssize_t max_digits
    Py_ssize_t cjk_chunk
    bint values_apart  # no leading space on value-like words (pretokenize._value_like)


cdef inline uint8_t cls_at(const Cfg* c, int kind, const void* data, Py_ssize_t i) noexcept nogil:
    cdef uint8_t k = c.table[PyUnicode_READ(kind, data, i)]
    if k == C_CJK and c.cjk_chunk == 0:
        return C_LETTER
    return k


cdef inline uint32_t ascii_lower(uint32_t ch, bint ci) noexcept nogil:
    if ci and 65 <= ch <= 90:
        return ch + 32
    return ch


cdef inline Py_ssize_t run_end(const Cfg* c, int kind, const void* data, Py_ssize_t n,
                               Py_ssize_t start, uint8_t cls, Py_ssize_t limit) noexcept nogil:
    cdef Py_ssize_t j = start
    while j < n and cls_at(c, kind, data, j) == cls and (limit == 0 or j - start < limit):
        j += 1
    return j


cdef inline bint value_like(const Cfg* c, int kind, const void* data, Py_ssize_t n,
                            Py_ssize_t k) noexcept nogil:
    """Does the run of non-space, non-CJK characters from k hold a digit or "@"?"""
    cdef uint8_t cl
    while k < n:
        cl = cls_at(c, kind, data, k)
        if cl == C_SPACE or cl == C_CJK:
            return False
        if cl == C_NUMBER or PyUnicode_READ(kind, data, k) == 64:
            return True
        k += 1
    return False


cdef Py_ssize_t match_at(const Cfg* c, int kind, const void* data, Py_ssize_t n,
                         Py_ssize_t i) noexcept nogil:
    """End of the pre-token starting at i (see pretokenize._match_at, the same rules)."""
    cdef uint32_t ch = PyUnicode_READ(kind, data, i)
    cdef uint32_t c1, c2
    cdef Py_ssize_t start, j
    cdef uint8_t cls, nxt
    if ch == 39 and i + 1 < n:  # apostrophe: 's 't 're 've 'm 'll 'd
        c1 = ascii_lower(PyUnicode_READ(kind, data, i + 1), c.ci)
        if c1 == 115 or c1 == 116 or c1 == 109 or c1 == 100:  # s t m d
            return i + 2
        if i + 2 < n:
            c2 = ascii_lower(PyUnicode_READ(kind, data, i + 2), c.ci)
            if (c1 == 114 and c2 == 101) or (c1 == 118 and c2 == 101) or (c1 == 108 and c2 == 108):
                return i + 3
    start = i
    cls = cls_at(c, kind, data, i)
    if ch == 32 and i + 1 < n:
        nxt = cls_at(c, kind, data, i + 1)
        if ((nxt == C_LETTER or nxt == C_NUMBER or nxt == C_OTHER)
                and not (c.values_apart and value_like(c, kind, data, n, i + 1))):
            start = i + 1
            cls = nxt
    if cls == C_LETTER or cls == C_OTHER:
        return run_end(c, kind, data, n, start, cls, 0)
    if cls == C_NUMBER:
        return run_end(c, kind, data, n, start, cls, c.max_digits)
    if cls == C_CJK:
        return run_end(c, kind, data, n, start, cls, c.cjk_chunk)
    j = run_end(c, kind, data, n, i, C_SPACE, 0)
    if j == n or j - i == 1:
        return j
    return j - 1


cdef class Splitter:
    """The pre-tokenizer for one mode; ``table`` is pretokenize.class_table()."""
    cdef bytes table_obj
    cdef Cfg cfg

    def __cinit__(self, bytes table, bint case_insensitive_contractions, Py_ssize_t max_digits,
                  Py_ssize_t cjk_chunk, bint values_apart=False):
        if len(table) != 0x110000:
            raise ValueError("class table must have one byte per code point (0x110000)")
        self.table_obj = table
        self.cfg.table = <const uint8_t*><char*>self.table_obj
        self.cfg.ci = case_insensitive_contractions
        self.cfg.max_digits = max_digits
        self.cfg.cjk_chunk = cjk_chunk
        self.cfg.values_apart = values_apart

    def split(self, str text):
        cdef list out = []
        cdef int kind = PyUnicode_KIND(text)
        cdef const void* data = PyUnicode_DATA(text)
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, j
        while i < n:
            j = match_at(&self.cfg, kind, data, n, i)
            out.append(PyUnicode_Substring(text, i, j))
            i = j
        return out

    def count(self, texts):
        """{pre-token: occurrences} over every str in ``texts``.

        Counted in a C hash table keyed by the piece's code points (like the encoder's cache),
        so no substring is created per occurrence — only one str per DISTINCT piece at the end.
        """
        cdef vector[CountSlot] slots
        cdef vector[uint32_t] key_pool
        cdef CountSlot empty
        empty.h = 0
        empty.key_off = 0
        empty.key_len = -1
        empty.count = 0
        slots.assign(1 << 14, empty)
        cdef Py_ssize_t used = 0, n, i, j, k, t, L
        cdef uint64_t h, m, pos
        cdef int kind
        cdef const void* data
        cdef CountSlot* sl
        cdef const uint32_t* key
        cdef str text
        for text in texts:
            kind = PyUnicode_KIND(text)
            data = PyUnicode_DATA(text)
            n = PyUnicode_GET_LENGTH(text)
            i = 0
            while i < n:
                j = match_at(&self.cfg, kind, data, n, i)
                L = j - i
                h = piece_hash(kind, data, i, j)
                m = slots.size() - 1
                pos = h & m
                while True:
                    sl = &slots[pos]
                    if sl.key_len < 0:
                        sl.h = h
                        sl.key_off = key_pool.size()
                        sl.key_len = L
                        sl.count = 1
                        for k in range(i, j):
                            key_pool.push_back(PyUnicode_READ(kind, data, k))
                        used += 1
                        if 2 * used > <Py_ssize_t>slots.size():
                            _grow_counts(slots)
                        break
                    if sl.h == h and sl.key_len == L:
                        key = key_pool.data() + sl.key_off
                        t = 0
                        while t < L and key[t] == PyUnicode_READ(kind, data, i + t):
                            t += 1
                        if t == L:
                            sl.count += 1
                            break
                    pos = (pos + 1) & m
                i = j
        cdef dict counts = {}
        for k in range(<Py_ssize_t>slots.size()):
            if slots[k].key_len >= 0:
                piece = PyUnicode_FromKindAndData(4, key_pool.data() + slots[k].key_off, slots[k].key_len)
                counts[piece] = slots[k].count
        return counts


cdef struct CountSlot:
    uint64_t h
    int64_t key_off
    int64_t key_len     # -1 = empty
    int64_t count


cdef void _grow_counts(vector[CountSlot]& slots):
    cdef vector[CountSlot] old
    old.swap(slots)
    cdef CountSlot empty
    empty.h = 0
    empty.key_off = 0
    empty.key_len = -1
    empty.count = 0
    slots.assign(2 * old.size(), empty)
    cdef uint64_t m = slots.size() - 1, pos
    for k in range(<Py_ssize_t>old.size()):
        if old[k].key_len >= 0:
            pos = old[k].h & m
            while slots[pos].key_len >= 0:
                pos = (pos + 1) & m
            slots[pos] = old[k]


cdef inline uint64_t piece_hash(int kind, const void* data, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef uint64_t h = <uint64_t>(j - i) * <uint64_t>0x9E3779B97F4A7C15
    cdef Py_ssize_t k
    for k in range(i, j):
        h = (h ^ PyUnicode_READ(kind, data, k)) * <uint64_t>0x100000001B3
    return h ^ (h >> 31)


# ----------------------------------------------------------------------------------------------
# training

cdef inline uint64_t pkey(int32_t a, int32_t b) noexcept nogil:
    return (<uint64_t><uint32_t>a << 32) | <uint64_t><uint32_t>b


def train_merges(list words, list freqs, Py_ssize_t num_merges, object progress=None):
    """Learn up to ``num_merges`` merges over distinct words (bytes) with their frequencies.

    Merge i creates id 256 + i. Returns a list of (left id, right id). Same result as
    bpe_ref.train on the same word counts (the order of ``words`` does not matter).
    """
    cdef vector[int32_t] sym, prv, nxt, wid   # one entry per symbol; words laid out back to back
    cdef vector[int64_t] wfreq
    cdef unordered_map[uint64_t, int64_t] counts
    cdef unordered_map[uint64_t, vector[int32_t]] where   # pair -> left positions (maybe stale)
    cdef priority_queue[pair[int64_t, int64_t]] heap
    cdef vector[int32_t] positions
    cdef vector[uint64_t] touched
    cdef Py_ssize_t w, k, L, start, step, idx
    cdef int64_t f, cur
    cdef uint64_t key, t
    cdef int32_t a, b, new_id, pos, r, p, q
    cdef const unsigned char* buf
    cdef pair[int64_t, int64_t] top
    cdef unordered_map[uint64_t, int64_t].iterator it
    cdef bint found, is_sorted
    if len(words) != len(freqs):
        raise ValueError("words and freqs differ in length")

    for w in range(len(words)):
        word = <bytes>words[w]
        buf = word
        L = len(word)
        f = freqs[w]
        wfreq.push_back(f)
        start = sym.size()
        for k in range(L):
            sym.push_back(buf[k])
            prv.push_back(start + k - 1 if k > 0 else -1)
            nxt.push_back(start + k + 1 if k < L - 1 else -1)
            wid.push_back(w)
        for k in range(L - 1):
            key = pkey(buf[k], buf[k + 1])
            counts[key] += f
            where[key].push_back(start + k)
    for kv in counts:
        heap.push(pair[int64_t, int64_t](kv.second, -<int64_t>kv.first))

    merges = []
    for step in range(num_merges):
        found = False
        while not heap.empty():
            top = heap.top()
            heap.pop()
            key = <uint64_t>(-top.second)
            it = counts.find(key)
            cur = 0 if it == counts.end() else deref(it).second
            if cur == top.first and cur > 0:
                found = True
                break
            if 0 < cur < top.first:  # count dropped since this entry was pushed: re-queue
                heap.push(pair[int64_t, int64_t](cur, top.second))
        if not found:
            break
        a = <int32_t>(key >> 32)
        b = <int32_t>(key & 0xFFFFFFFF)
        new_id = <int32_t>(256 + step)
        merges.append((a, b))

        positions.swap(where[key])
        where.erase(key)
        counts.erase(key)
        # left-to-right within a word matters for overlaps ("a a a"); words are laid out in order
        is_sorted = True
        for idx in range(1, <Py_ssize_t>positions.size()):
            if positions[idx] < positions[idx - 1]:
                is_sorted = False
                break
        if not is_sorted:
            sort(positions.begin(), positions.end())
        touched.clear()
        for idx in range(<Py_ssize_t>positions.size()):
            pos = positions[idx]
            if sym[pos] != a:
                continue
            r = nxt[pos]
            if r < 0 or sym[r] != b:
                continue
            f = wfreq[wid[pos]]
            p = prv[pos]
            q = nxt[r]
            if p >= 0:
                t = pkey(sym[p], a)
                if t != key:
                    counts[t] -= f
                t = pkey(sym[p], new_id)
                counts[t] += f
                where[t].push_back(p)
                touched.push_back(t)
            if q >= 0:
                t = pkey(b, sym[q])
                if t != key:
                    counts[t] -= f
                t = pkey(new_id, sym[q])
                counts[t] += f
                where[t].push_back(pos)
                touched.push_back(t)
            sym[pos] = new_id
            sym[r] = -1
            nxt[pos] = q
            if q >= 0:
                prv[q] = pos
        positions.clear()
        counts.erase(key)  # decrements of an overlapping (a, a) may have re-created it
        for idx in range(<Py_ssize_t>touched.size()):
            t = touched[idx]
            it = counts.find(t)
            if it != counts.end() and deref(it).second > 0:
                heap.push(pair[int64_t, int64_t](deref(it).second, -<int64_t>t))
        if progress is not None and (step + 1) % 256 == 0:
            progress(step + 1)
    return merges


# ----------------------------------------------------------------------------------------------
# encoding

cdef uint64_t EMPTY_KEY = 0xFFFFFFFFFFFFFFFFULL
cdef int32_t NO_RANK = 0x7FFFFFFF


cdef struct CacheSlot:
    uint64_t h
    int32_t key_off      # code points of the piece in key_pool
    int32_t key_len      # -1 = empty slot
    int32_t val_off      # its ids in val_pool
    int32_t val_len

cdef enum:
    MAX_CACHED_LEN = 64  # longer pieces are rare and cheap to recompute relative to their size


cdef class Encoder:
    """Ordinary text -> ids for one set of merges (no special tokens; the caller splits them).

    The piece cache is a C hash table keyed by the piece's code points, so a hit costs a hash
    and a compare over the characters — no substring object, no dict. It holds at most
    ``cache_max`` pieces (then stops adding); pieces longer than 64 characters are not cached.
    The whole encode holds the GIL and creates no Python objects until the final list, so one
    Encoder may be shared by threads.
    """
    cdef Splitter splitter
    cdef uint64_t* keys        # open-addressing pair table: key -> (rank, merged id)
    cdef int32_t* ranks
    cdef int32_t* results
    cdef uint64_t mask
    cdef int32_t byte_to_id[256]
    cdef list id_objs            # id -> the one Python int object for it (no allocation per token)
    cdef Py_ssize_t cache_max, n_cached
    cdef vector[CacheSlot] slots
    cdef vector[uint32_t] key_pool
    cdef vector[int32_t] val_pool

    def __cinit__(self, Splitter splitter, list merges, list byte_to_id, Py_ssize_t cache_max=1 << 18):
        """merges: [(left id, right id, merged id)] in rank order."""
        cdef uint64_t cap = 16, slot, key
        cdef Py_ssize_t rank
        self.splitter = splitter
        if len(byte_to_id) != 256:
            raise ValueError("byte_to_id must have 256 entries")
        for k in range(256):
            self.byte_to_id[k] = byte_to_id[k]
        top = max([max(byte_to_id)] + [m[2] for m in merges])
        self.id_objs = list(range(top + 1))
        while cap < 2 * <uint64_t>len(merges) + 16:
            cap <<= 1
        self.mask = cap - 1
        self.keys = <uint64_t*>malloc(cap * sizeof(uint64_t))
        self.ranks = <int32_t*>malloc(cap * sizeof(int32_t))
        self.results = <int32_t*>malloc(cap * sizeof(int32_t))
        if self.keys == NULL or self.ranks == NULL or self.results == NULL:
            raise MemoryError()
        for slot in range(cap):
            self.keys[slot] = EMPTY_KEY
        for rank in range(len(merges)):
            a, b, res = merges[rank]
            key = pkey(a, b)
            slot = self._slot(key)
            if self.keys[slot] == key:
                continue  # a pair listed twice: the first (lowest) rank wins
            self.keys[slot] = key
            self.ranks[slot] = rank
            self.results[slot] = res
        self.cache_max = cache_max
        self.n_cached = 0
        self._cache_resize(1 << 12)

    def __dealloc__(self):
        free(self.keys)
        free(self.ranks)
        free(self.results)

    @property
    def cached_pieces(self):
        return self.n_cached

    cdef inline uint64_t _slot(self, uint64_t key) noexcept nogil:
        cdef uint64_t slot = ((key * <uint64_t>0x9E3779B97F4A7C15) >> 29) & self.mask
        while self.keys[slot] != key and self.keys[slot] != EMPTY_KEY:
            slot = (slot + 1) & self.mask
        return slot

    cdef inline int32_t _rank(self, int32_t a, int32_t b, int32_t* result) noexcept nogil:
        cdef uint64_t slot = self._slot(pkey(a, b))
        if self.keys[slot] == EMPTY_KEY:
            return NO_RANK
        result[0] = self.results[slot]
        return self.ranks[slot]

    # -------------------------------------------------------------- piece cache
    cdef void _cache_resize(self, Py_ssize_t size):
        cdef vector[CacheSlot] old
        old.swap(self.slots)
        cdef CacheSlot empty
        empty.h = 0
        empty.key_off = 0
        empty.key_len = -1
        empty.val_off = 0
        empty.val_len = 0
        self.slots.assign(size, empty)
        cdef uint64_t m = size - 1, pos
        for k in range(<Py_ssize_t>old.size()):
            if old[k].key_len >= 0:
                pos = old[k].h & m
                while self.slots[pos].key_len >= 0:
                    pos = (pos + 1) & m
                self.slots[pos] = old[k]

    cdef Py_ssize_t _cache_find(self, uint64_t h, int kind, const void* data, Py_ssize_t i,
                                Py_ssize_t j) noexcept:
        """Slot index holding text[i:j], or -(empty slot index) - 1 where it would go."""
        cdef uint64_t m = self.slots.size() - 1, pos = h & m
        cdef Py_ssize_t t, L = j - i
        cdef CacheSlot* sl
        cdef const uint32_t* key
        while True:
            sl = &self.slots[pos]
            if sl.key_len < 0:
                return -<Py_ssize_t>pos - 1
            if sl.h == h and sl.key_len == L:
                key = self.key_pool.data() + sl.key_off
                t = 0
                while t < L and key[t] == PyUnicode_READ(kind, data, i + t):
                    t += 1
                if t == L:
                    return pos
            pos = (pos + 1) & m

    # -------------------------------------------------------------- BPE on one piece
    cdef void _bpe_into(self, int kind, const void* data, Py_ssize_t i, Py_ssize_t j,
                        vector[int32_t]* out) noexcept:
        """Append the ids of text[i:j] (its UTF-8 "surrogatepass" bytes, merged) to out."""
        cdef uint32_t cp
        cdef Py_ssize_t k, n, best_i, src, dst
        cdef int32_t best_rank, best_res, a, b
        cdef vector[int32_t] work
        work.reserve(12 * (j - i))
        for k in range(i, j):
            cp = PyUnicode_READ(kind, data, k)
            if cp < 0x80:
                work.push_back(self.byte_to_id[cp])
            elif cp < 0x800:
                work.push_back(self.byte_to_id[0xC0 | (cp >> 6)])
                work.push_back(self.byte_to_id[0x80 | (cp & 0x3F)])
            elif cp < 0x10000:  # includes lone surrogates, encoded like "surrogatepass"
                work.push_back(self.byte_to_id[0xE0 | (cp >> 12)])
                work.push_back(self.byte_to_id[0x80 | ((cp >> 6) & 0x3F)])
                work.push_back(self.byte_to_id[0x80 | (cp & 0x3F)])
            else:
                work.push_back(self.byte_to_id[0xF0 | (cp >> 18)])
                work.push_back(self.byte_to_id[0x80 | ((cp >> 12) & 0x3F)])
                work.push_back(self.byte_to_id[0x80 | ((cp >> 6) & 0x3F)])
                work.push_back(self.byte_to_id[0x80 | (cp & 0x3F)])
        n = work.size()
        # ranks[k], merged[k]: rank and result of the pair (ids[k], ids[k + 1]); NO_RANK if none.
        # Kept up to date so each round costs one scan of ints plus lookups for new pairs only.
        work.resize(3 * n)
        cdef int32_t* ids = work.data()
        cdef int32_t* ranks = ids + n
        cdef int32_t* merged = ids + 2 * n
        for k in range(n - 1):
            ranks[k] = self._rank(ids[k], ids[k + 1], &merged[k])
        while n >= 2:
            best_rank = NO_RANK
            best_i = 0
            for k in range(n - 1):  # the leftmost lowest rank = the leftmost (a, b)
                if ranks[k] < best_rank:
                    best_rank = ranks[k]
                    best_i = k
            if best_rank == NO_RANK:
                break
            a = ids[best_i]
            b = ids[best_i + 1]
            best_res = merged[best_i]
            src = best_i
            dst = best_i
            while src < n:  # merge every occurrence, left to right
                if src + 1 < n and ids[src] == a and ids[src + 1] == b:
                    ids[dst] = best_res
                    src += 2
                else:  # untouched: its pair with the next original keeps its rank (fixed below if not)
                    ids[dst] = ids[src]
                    ranks[dst] = ranks[src]
                    merged[dst] = merged[src]
                    src += 1
                dst += 1
            n = dst
            for k in range(best_i - 1 if best_i > 0 else 0, n - 1):
                if ids[k] == best_res or ids[k + 1] == best_res:
                    ranks[k] = self._rank(ids[k], ids[k + 1], &merged[k])
        for k in range(n):
            out.push_back(ids[k])

    def encode(self, str text):
        cdef int kind = PyUnicode_KIND(text)
        cdef const void* data = PyUnicode_DATA(text)
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, j, k, L, found, start
        cdef uint32_t cp
        cdef uint64_t h
        cdef const Cfg* cfg = &self.splitter.cfg
        cdef vector[int32_t] out
        cdef CacheSlot* sl
        cdef CacheSlot fresh
        out.reserve(n // 2 + 8)
        while i < n:
            j = match_at(cfg, kind, data, n, i)
            L = j - i
            if L == 1:
                cp = PyUnicode_READ(kind, data, i)
                if cp < 0x80:  # one ASCII byte: no merge can apply
                    out.push_back(self.byte_to_id[cp])
                    i = j
                    continue
            if L > MAX_CACHED_LEN:
                self._bpe_into(kind, data, i, j, &out)
                i = j
                continue
            h = piece_hash(kind, data, i, j)
            found = self._cache_find(h, kind, data, i, j)
            if found >= 0:
                sl = &self.slots[found]
                out.insert(out.end(), self.val_pool.begin() + sl.val_off,
                           self.val_pool.begin() + sl.val_off + sl.val_len)
            else:
                start = out.size()
                self._bpe_into(kind, data, i, j, &out)
                if self.n_cached < self.cache_max:
                    fresh.h = h
                    fresh.key_off = self.key_pool.size()
                    fresh.key_len = L
                    fresh.val_off = self.val_pool.size()
                    fresh.val_len = out.size() - start
                    for k in range(i, j):
                        self.key_pool.push_back(PyUnicode_READ(kind, data, k))
                    self.val_pool.insert(self.val_pool.end(), out.begin() + start, out.end())
                    self.slots[-found - 1] = fresh
                    self.n_cached += 1
                    if 2 * self.n_cached > <Py_ssize_t>self.slots.size():
                        self._cache_resize(2 * self.slots.size())
            i = j
        cdef Py_ssize_t m = out.size()
        cdef list result = PyList_New(m)
        cdef list objs = self.id_objs
        cdef object item
        for k in range(m):
            item = objs[out[k]]
            Py_INCREF(item)
            PyList_SET_ITEM(result, k, item)
        return result


# ----------------------------------------------------------------------------------------------
# decoding

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy


def join_token_bytes(list table, ids):
    """b"".join(table[i] for i in ids), with a range check on every id (returns the bad one as
    (None, index) so the caller can name it in its error)."""
    cdef Py_ssize_t n = len(table), total = 0, k, m, i
    cdef list seq = ids if type(ids) is list else list(ids)
    m = len(seq)
    cdef vector[Py_ssize_t] idx
    idx.resize(m)
    for k in range(m):
        try:
            i = seq[k]
        except (TypeError, OverflowError):
            return None, k
        if i < 0 or i >= n:
            return None, k
        idx[k] = i
        total += PyBytes_GET_SIZE(<bytes>table[i])
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* dst = PyBytes_AS_STRING(out)
    cdef bytes piece
    for k in range(m):
        piece = <bytes>table[idx[k]]
        memcpy(dst, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece))
        dst += PyBytes_GET_SIZE(piece)
    return out, -1

