"""Cut one line's text into chunks of at most ``max_bytes`` UTF-8 bytes (pure, no I/O).

Cut points, best first; a worse kind is used only inside a piece that no better kind can
bring under the cap:

1. sentence ends: a run of ``。｡．！？‼⁇⁈⁉`` (wherever it stands), or of ``. ! ? …`` followed,
   after any closing quotes and brackets (``」』”’）)"'`` and their full-width forms, ``_``
   and ``*`` italics markers), by whitespace or the end of the text, or an ellipsis run
   followed by a closing quote; runs such as ``?!``, ``……``, ``...``, ``。」`` stay whole;
2. clause punctuation: ``，、；：`` (anywhere), ``, ; :`` followed by whitespace, dashes
   (``——``, ``—``, a spaced ``–``/``-``), a mid-sentence ellipsis (``我……我``), and a
   ``! ?`` or ``...`` rejected as a sentence end (``"What?" he asked``);
3. whitespace;
4. between grapheme clusters (UAX #29, the ``regex`` module's ``\\X``), avoiding the inside
   of an ASCII word or number (``3.14``, ``1,000``) when a boundary outside one is in reach;
5. between code points, only inside a single grapheme cluster longer than ``max_bytes``
   (a very long ZWJ emoji sequence or a stack of combining marks with a tiny cap).
   A code point is never cut: hence ``max_bytes >= 4``.

Never a cut: after ``.`` in a number (``3.14``), after ``,``/``:`` in ``1,000``/``10:30``,
after an abbreviation (``Mr.``, ``Mrs.``, ``Dr.``, ``St.``, ``e.g.``, ``i.e.``, ``U.S.``, a
single initial ``J.``), at ``. ! ?`` followed by a lower-case word (``etc. and``,
``"Why?" she asked``), between a sentence stop and its closing quote, inside a grapheme
cluster (``\\X`` boundaries only), inside a UTF-8 character.

Whitespace contract: each chunk is a slice ``text[s:e]`` of the input, the slices are in
order and do not overlap, and everything of the input outside them is whitespace
(``str.isspace``): the whitespace at each cut and at both ends is dropped, nothing else is.
So ``"".join(chunks)`` is the input with the whitespace runs at the cuts and at the ends
removed. A chunk starts or ends with whitespace only where that whitespace is part of a
grapheme cluster with a non-space (a space carrying a combining mark, a prepended
concatenation mark before a space). Empty or whitespace-only text gives ``[]``.

Balance: pieces that fit are packed whole, as many per chunk as the cap allows, into the
fewest chunks a greedy packing needs (k); the cut points are then chosen to make the
largest of the k chunks as small as possible and each as close to total/k as the cut
points allow, so no tiny tail is left. A piece over the cap is cut on its own at the next
kind of cut point; below the sentence level a scrap under cap/8 beside it (a lone word, a
"曰：") goes with it rather than alone. A short whole sentence is still a chunk of its own.

All of it runs in near-linear time: compiled regexes over the text, a bisect-based packer
over the pieces, and a byte-level splitter for runs with no punctuation or space (the
grapheme pass only runs where such a run needs it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import regex

from pipeline.speech import MAX_INPUT_BYTES

MIN_MAX_BYTES = 4  # one UTF-8 character of any code point


def _check_small_cap(text: str, max_bytes: int) -> None:
    """Caps under 4 bytes work only for text whose every character fits in them."""
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    for ch in text:
        size = len(ch.encode("utf-8"))
        if size > max_bytes:
            raise ValueError(
                f"the character {ch!r} is {size} UTF-8 bytes, more than the chunk cap of "
                f"{max_bytes}: use a cap of at least {MIN_MAX_BYTES}"
            )

# str.isspace() exactly (checked by a test), so "whitespace" means one thing everywhere.
_WS = r"[\t\n\x0b\x0c\r\x1c-\x1f\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
# A character that joins the grapheme cluster before it: no cut may stand before one.
_JOINS_LEFT = r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}]"
# Controls (tab, line breaks) are clusters of their own whatever stands around them (GB4/GB5).
_CONTROL = r"[\p{GCB=Control}\p{GCB=CR}\p{GCB=LF}]"
# Whitespace that can be dropped at a cut without breaking a cluster: not a space after a
# prepended mark (GB9b), not a space that is the base of a following combining mark (GB9).
_GAP = (
    rf"(?:(?<!\p{{GCB=Prepend}})|(?={_CONTROL})){_WS}+"
    rf"(?:(?<={_CONTROL})|(?!{_JOINS_LEFT}))"
)

_CLOSE = r"[」』”’）)\"'\]}｝］〉》】〕〗〙〛＂＇»›_*]"
_OPEN = r"[“‘「『（(\[{\"'«‹_*]"
_CJK_STOP = r"(?:[。｡！？‼⁇⁈⁉]|．(?!\p{Nd}))"
_ANY_STOP = r"[。｡．！？‼⁇⁈⁉!?.…⋯]"
_TITLES = (
    "Mr|Mrs|Ms|Mx|Dr|St|Prof|Jr|Sr|Mt|Capt|Col|Gen|Gov|Lt|Sgt|Rev|Hon|Messrs|Mme|Mlle"
    "|vs|viz|cf|al|approx"
)
# The word before a "." that makes it an abbreviation: a title, or a single letter, which
# covers initials ("J. Smith") and dotted forms ("e.g.", "i.e.", "U.S.").
_ABBR_WORD = rf"(?:^|(?<=[^\p{{L}}\p{{N}}]))(?:{_TITLES}|\p{{L}})"
_END = rf"(?={_WS}|\Z)"
_LOWER_NEXT = rf"{_WS}+{_OPEN}*\p{{Ll}}"

_SENTENCE = regex.compile(
    rf"""(?P<body>
        {_ANY_STOP}*{_CJK_STOP}{_ANY_STOP}*{_CLOSE}*
      | (?:\.(?<!{_ABBR_WORD}\.)|[!?…⋯])[.!?…⋯]*{_CLOSE}*{_END}(?!{_LOWER_NEXT})
      | […⋯]+{_CLOSE}+
    )(?!{_JOINS_LEFT})(?P<gap>{_GAP})?""",
    regex.VERBOSE,
)
_CLAUSE = regex.compile(
    rf"""(?P<body>
        [，、；：﹐﹑﹔﹕､]+{_CLOSE}*
      | [,;:]+{_CLOSE}*(?={_WS})
      | (?:[!?…⋯]|\.\.)[!?.…⋯]*{_CLOSE}*(?={_WS})
      | […⋯]+{_CLOSE}*
      | [—―]+{_CLOSE}*
      | (?<={_WS})[–-](?={_WS})
    )(?!{_JOINS_LEFT})(?P<gap>{_GAP})?""",
    regex.VERBOSE,
)
# A whole whitespace run (never its tail), except right after an abbreviation ("Mr. Holmes",
# "etc. and").
_SPACE = regex.compile(rf"(?P<body>)(?={_WS})(?<!{_WS}|(?:{_ABBR_WORD}|etc)\.)(?P<gap>{_GAP})")
_LEVELS = (_SENTENCE, _CLAUSE, _SPACE)

# \X alone counts regional indicators back to the start of the string at each one, which
# is quadratic in a run of flags; pairing them first from a cluster boundary is the same
# segmentation (GB12/GB13) in linear time.
_GRAPHEME = regex.compile(rf"\p{{GCB=Regional_Indicator}}{{2}}{_JOINS_LEFT}*|\X")
# Characters whose grapheme cluster may span more than one code point. A span without any
# has one cluster per code point (precomposed Hangul syllables alone are single clusters).
_MULTI_CODE_POINT = regex.compile(
    r"[\p{GCB=CR}\p{GCB=LF}\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=Regional_Indicator}"
    r"\p{GCB=Prepend}\p{GCB=SpacingMark}\p{GCB=L}\p{GCB=V}\p{GCB=T}]"
)
_JOINS_LEFT_RE = regex.compile(_JOINS_LEFT)
_PREPEND_RE = regex.compile(r"\p{GCB=Prepend}")
_CONTROL_RE = regex.compile(_CONTROL)
# An ASCII word or number, "3.14" and "1,000" included: the last resort avoids cutting one.
_TOKEN_BYTES = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,")
_TOKEN_BACK = regex.compile(rb"(?r)[0-9A-Za-z.,]*")
_TOKEN_FORWARD = regex.compile(rb"[0-9A-Za-z.,]*")

Span = tuple[int, int]


def split_text(text: str, max_bytes: int = MAX_INPUT_BYTES) -> list[str]:
    """Chunks of ``text`` of at most ``max_bytes`` UTF-8 bytes each; see the module doc.

    Raises ``ValueError`` when ``max_bytes`` is under 4 (one UTF-8 character) and
    ``UnicodeEncodeError`` for a lone surrogate (text decoded from UTF-8 has none).
    """
    if max_bytes < MIN_MAX_BYTES:
        _check_small_cap(text, max_bytes)
    start, end = _strip(text, 0, len(text))
    if start >= end:
        return []
    if (end - start) * 4 <= max_bytes or len(text[start:end].encode()) <= max_bytes:
        return [text[start:end]]
    spans: list[Span] = []
    _split_span(text, start, end, 0, max_bytes, spans)
    return [text[s:e] for s, e in spans]


def _strip(text: str, start: int, end: int, *, whole_clusters: bool = True) -> Span:
    """``text[start:end]`` without whitespace at either end.

    With ``whole_clusters``, a space that belongs to a cluster with a non-space (a space
    carrying a combining mark, one after a prepended mark) is kept; without, the edges are
    cuts inside a cluster already and any whitespace there goes.
    """
    first, last = start, end
    while first < last and text[first].isspace():
        first += 1
    while last > first and text[last - 1].isspace():
        last -= 1
    if first == last or not whole_clusters:
        return first, last
    if first > start and _JOINS_LEFT_RE.match(text, first):
        if not _CONTROL_RE.match(text, first - 1):
            first -= 1  # that space carries a combining mark
    if last < end and _PREPEND_RE.match(text, last - 1) and not _CONTROL_RE.match(text, last):
        last += 1  # a prepended mark takes the space after it into its cluster
    return first, last


def _split_span(text: str, start: int, end: int, level: int, cap: int, out: list[Span]) -> None:
    """Append to ``out`` the chunks of ``text[start:end]``, cut at ``_LEVELS[level]`` or worse."""
    if level == len(_LEVELS):
        out.extend(_split_clusters(text, start, end, cap))
        return
    units = _units(_LEVELS[level], text, start, end)
    first, last = _byte_offsets(text, units)
    oversized = [i for i in range(len(units)) if last[i] - first[i] > cap]
    # Below the sentence level, a scrap (a lone word, a short clause) next to an oversized
    # unit is cut together with it, by the next kind of cut, instead of being sent alone.
    scrap = cap // 8 if level > 0 else 0
    run = 0  # first unit of the current run of units that fit
    for n, i in enumerate(oversized):
        if run < i and last[i - 1] - first[run] < scrap:
            piece_start = units[run][0]
        else:
            _emit_run(units, first, last, run, i, cap, out)
            piece_start = units[i][0]
        run = i + 1
        is_last = n == len(oversized) - 1
        if is_last and run < len(units) and last[-1] - first[run] < scrap:
            run = len(units)
        _split_span(text, piece_start, units[run - 1][1], level + 1, cap, out)
    _emit_run(units, first, last, run, len(units), cap, out)


def _units(pattern: regex.Pattern[str], text: str, start: int, end: int) -> list[Span]:
    """The pieces of ``text[start:end]`` between the cut points ``pattern`` finds."""
    units: list[Span] = []
    piece = start
    for match in pattern.finditer(text, start, end):
        cut = match.end("body")
        if cut > piece:
            units.append((piece, cut))
        piece = match.end()
    if piece < end:
        units.append((piece, end))
    return units


def _byte_offsets(text: str, units: list[Span]) -> tuple[list[int], list[int]]:
    """UTF-8 byte offsets of each unit's start and end, counted from the first unit's start."""
    base = units[0][0]
    if text[base : units[-1][1]].isascii():
        return [s - base for s, _ in units], [e - base for _, e in units]
    first: list[int] = []
    last: list[int] = []
    offset = 0
    previous = base
    for unit_start, unit_end in units:
        offset += len(text[previous:unit_start].encode())
        first.append(offset)
        offset += len(text[unit_start:unit_end].encode())
        last.append(offset)
        previous = unit_end
    return first, last


def _emit_run(
    units: list[Span],
    first: list[int],
    last: list[int],
    lo: int,
    hi: int,
    cap: int,
    out: list[Span],
) -> None:
    """Pack units ``lo..hi-1`` (each within the cap) into balanced chunks."""
    if lo >= hi:
        return
    for a, b in _pack(first[lo:hi], last[lo:hi], cap):
        out.append((units[lo + a][0], units[lo + b][1]))


def _pack(first: list[int], last: list[int], cap: int) -> list[Span]:
    """Groups ``(i, j)`` of consecutive units, inclusive, each group within ``cap`` bytes.

    As few groups as greedy packing gives (k); the largest group as small as possible; each
    group's end as near to an even share of what remains as that allows.
    """
    total = last[-1] - first[0]
    if total <= cap:
        return [(0, len(first) - 1)]
    count = _greedy_count(first, last, cap)
    # Not total / count: the whitespace dropped at the cuts counts in `total` only.
    low = max(e - s for s, e in zip(first, last, strict=True))
    high = cap
    while low < high:  # the smallest limit that still needs only `count` groups
        middle = (low + high) // 2
        if _greedy_count(first, last, middle) <= count:
            high = middle
        else:
            low = middle + 1
    return _balanced_groups(first, last, low, count)


def _greedy_count(first: list[int], last: list[int], limit: int) -> int:
    count = 0
    i = 0
    while i < len(first):
        i = bisect_right(last, first[i] + limit, i)
        count += 1
    return count


def _balanced_groups(first: list[int], last: list[int], limit: int, count: int) -> list[Span]:
    n = len(first)
    reach = [bisect_right(last, first[i] + limit, i) - 1 for i in range(n)]
    needed = [0] * (n + 1)  # fewest groups for units i.. under `limit`; never rises with i
    for i in range(n - 1, -1, -1):
        needed[i] = 1 + needed[reach[i] + 1]
    groups: list[Span] = []
    i = 0
    left = count
    while i < n:
        if left <= 1 or needed[i] <= 1:
            groups.append((i, n - 1))
            break
        # The earliest end that still lets the rest fit in left - 1 groups.
        earliest = bisect_left(range(i, reach[i] + 1), True, key=lambda j: needed[j + 1] < left)
        earliest += i
        target = first[i] + (last[-1] - first[i]) / left
        j = bisect_left(last, target, earliest, reach[i] + 1)
        j = min(j, reach[i])
        if j > earliest and target - last[j - 1] <= last[j] - target:
            j -= 1
        groups.append((i, j))
        i = j + 1
        left -= 1
    return groups


def _split_clusters(text: str, start: int, end: int, cap: int) -> list[Span]:
    """Cut a run with no cut point of a better kind between grapheme clusters, evenly.

    Works on the UTF-8 bytes: a cut is a byte offset, so no chunk can exceed the cap by
    counting characters instead of bytes.
    """
    data = text[start:end].encode()
    size = len(data)
    per_code_point = _MULTI_CODE_POINT.search(text, start, end) is None
    spans: list[Span] = []
    char_pos, byte_pos = start, 0
    mid_cluster = False  # whether the last cut fell between code points of one cluster
    left = -(-size // cap)
    while size - byte_pos > cap:
        left = max(left, -(-(size - byte_pos) // cap))
        target = byte_pos + -(-(size - byte_pos) // left)
        limit = byte_pos + cap
        if per_code_point:
            cut, on_boundary = _code_point_cut(data, byte_pos, target, limit), True
        else:
            cut, on_boundary = _cluster_cut(text, char_pos, end, data, byte_pos, target, limit)
        piece_end = char_pos + len(data[byte_pos:cut].decode())
        _add_piece(text, char_pos, piece_end, mid_cluster, not on_boundary, spans)
        char_pos, byte_pos, mid_cluster = piece_end, cut, not on_boundary
        left -= 1
    _add_piece(text, char_pos, end, mid_cluster, False, spans)
    return spans


def _add_piece(
    text: str, start: int, end: int, raw_start: bool, raw_end: bool, spans: list[Span]
) -> None:
    """Keep ``text[start:end]`` less the whitespace at its cuts (``raw_*``: a cut inside a
    cluster). Such whitespace is inside the run where a better cut was refused: after an
    abbreviation, around a prepended or combining mark."""
    first, last = _strip(text, start, end)
    if raw_start or raw_end:
        raw_first, raw_last = _strip(text, start, end, whole_clusters=False)
        first = raw_first if raw_start else first
        last = raw_last if raw_end else last
    if first < last:
        spans.append((first, last))


def _code_point_cut(data: bytes, lo: int, target: int, limit: int) -> int:
    """The code point boundary in ``(lo, limit]`` nearest ``target``, outside ASCII tokens."""
    down = target
    while down > lo and data[down] & 0xC0 == 0x80:
        down -= 1
    up = target
    while up < limit and data[up] & 0xC0 == 0x80:
        up += 1
    candidates = [b for b in (down, up) if lo < b <= limit and data[b] & 0xC0 != 0x80]
    cut = min(candidates, key=lambda b: abs(b - target))
    if _inside_token(data, cut):
        token_start = cut - _match_length(_TOKEN_BACK, data, lo, cut)
        token_end = cut + _match_length(_TOKEN_FORWARD, data, cut, limit)
        edges = [b for b in (token_start, token_end) if lo < b <= limit and b < len(data)]
        edges = [b for b in edges if not _inside_token(data, b)]
        if edges:
            cut = min(edges, key=lambda b: abs(b - target))
    return cut


def _cluster_cut(
    text: str, char_pos: int, end: int, data: bytes, lo: int, target: int, limit: int
) -> tuple[int, bool]:
    """The grapheme boundary in ``(lo, limit]`` nearest ``target``, outside ASCII tokens.

    With no boundary in reach (one cluster longer than the cap), a code point boundary;
    the flag says which.
    """
    # cap + 1 characters span more than cap bytes, so the window's last cluster, which may
    # be cut short by the window, never ends inside (lo, limit] unless the text ends there.
    window_end = min(end, char_pos + (limit - lo) + 1)
    bounds: list[int] = []
    offset = lo
    # A slice, not pos/endpos: \X would look back over the whole text for regional
    # indicators. `char_pos` is a cluster boundary, so the slice segments the same way (after
    # a cut inside an oversized cluster, it differs only inside that cluster).
    for cluster in _GRAPHEME.findall(text[char_pos:window_end]):
        offset += len(cluster.encode())
        if offset > limit:
            break
        bounds.append(offset)
    if not bounds:
        return _code_point_cut(data, lo, target, limit), False
    soft = [b for b in bounds if not _inside_token(data, b)]
    return min(soft or bounds, key=lambda b: abs(b - target)), True


def _inside_token(data: bytes, cut: int) -> bool:
    return 0 < cut < len(data) and data[cut - 1] in _TOKEN_BYTES and data[cut] in _TOKEN_BYTES


def _match_length(pattern: regex.Pattern[bytes], data: bytes, pos: int, endpos: int) -> int:
    match = pattern.match(data, pos, endpos)
    return len(match.group()) if match else 0
