"""Text for generated C: string literals, comments and identifiers, safe whatever they are made of.

Both C header generators (``anyedge export-c`` and ``anyedge har export-c``) write strings that
come from a bundle (model name, file names, labels, manifest fields) or from a model file
(tensor names). Anything read from a bundle is untrusted, so every such string goes through
here:

* :func:`c_string` makes a string literal of printable ASCII only: a quote and a backslash are
  escaped (``\\"``, ``\\\\``); a ``?`` (trigraphs under ``-std=c99``), control characters
  (newline, NUL...) and every byte of non-ASCII UTF-8 become three-digit octal escapes, so the
  literal means exactly the original bytes and cannot end early or start a new line.
* :func:`c_comment` makes text for inside ``/* ... */``: the same escapes, and ``*/`` / ``/*``
  broken apart, so the comment cannot be closed (or nested) by the text.
* :func:`c_ident` derives an identifier from a free name (a model name); :func:`check_c_ident`
  refuses a name given as an identifier that is not one, or that C, C++, the headers the
  generated code includes, or anyedge's C libraries already use.
"""

from __future__ import annotations

import re

__all__ = ["c_string", "c_comment", "c_ident", "check_c_ident", "reserved_reason", "MAX_IDENT"]

#: longest identifier stem accepted: C99 guarantees 63 significant characters (internal names)
MAX_IDENT = 63

_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if inline int long
    register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
    alignas alignof bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
    and and_eq asm bitand bitor catch char8_t char16_t char32_t class co_await co_return co_yield compl concept
    const_cast consteval constinit decltype delete dynamic_cast explicit export friend mutable namespace new
    noexcept not not_eq operator or or_eq private protected public reinterpret_cast requires static_cast
    template this throw try typeid typename using virtual wchar_t xor xor_eq
    NULL offsetof size_t ptrdiff_t max_align_t
""".split())
# what <stddef.h>/<stdint.h> define besides: the intN_t types and the limit macros (C reserves every
# INT*/UINT* name ending in _MAX, _MIN or _C for them)
_STD_NAMES = re.compile(r"u?int(8|16|32|64|ptr|max|_least\d+|_fast\d+)_t|U?INT\w*_(MAX|MIN|C)"
                        r"|(SIZE|PTRDIFF|WCHAR|WINT|SIG_ATOMIC)_(MAX|MIN)")
# the C libraries' own names: anyedge_post.h (aepost_*, AEPOST_*) and anyedge_bnn.h (aebnn_*, AEBNN_*)
_LIBRARY_PREFIXES = ("aepost", "aebnn")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# each byte of the UTF-8 text: printable ASCII as itself, backslash and quote escaped, ? and everything else
# (control characters, NUL, bytes of non-ASCII characters) as a three-digit octal escape
_BYTE = [chr(b) if 0x20 <= b < 0x7F and b != ord("?") else f"\\{b:03o}" for b in range(256)]
_BYTE[ord("\\")], _BYTE[ord('"')] = "\\\\", '\\"'


def _escape(text: str) -> str:
    return "".join(_BYTE[b] for b in str(text).encode("utf-8", "surrogatepass"))


def c_string(text: str) -> str:
    """A C string literal holding exactly the UTF-8 bytes of ``text``, written in printable ASCII.

    For example ``a"b`` becomes ``"a\\"b"``, ``??/`` becomes ``"\\077\\077/"`` and ``é`` becomes
    ``"\\303\\251"``.
    """
    return f'"{_escape(text)}"'


def c_comment(text: str) -> str:
    """``text`` made safe to write between ``/*`` and ``*/`` on one line.

    The same escapes as :func:`c_string` (no line break, ``??``, NUL or non-ASCII survives),
    and a space between any ``*`` and ``/`` that touch, so ``*/`` and ``/*`` never appear.
    """
    return re.sub(r"\*(?=/)|/(?=\*)", lambda m: m.group() + " ", _escape(text))


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be the identifier of a generated model, or ``None`` when it can."""
    if not _IDENT.fullmatch(name):
        return "it is not a C identifier (a letter or _, then letters, digits or _)"
    if len(name) > MAX_IDENT:
        return f"it is longer than {MAX_IDENT} characters"
    if name.startswith("_"):
        return "names starting with _ are reserved to the C implementation"
    if name in _KEYWORDS or _STD_NAMES.fullmatch(name):
        return "it is a C or C++ keyword or a name <stddef.h>/<stdint.h> define"
    if name.lower().startswith(_LIBRARY_PREFIXES):
        return "anyedge's C libraries use the names starting with aepost and aebnn"
    return None


def check_c_ident(name: str, what: str = "--name") -> str:
    """``name`` when it can name a generated model in C.

    Raises:
        InputError: not a C identifier, or a reserved one (see :func:`reserved_reason`).
    """
    from anyedge.errors import InputError

    why = reserved_reason(name) if isinstance(name, str) else "it is not a string"
    if why is not None:
        raise InputError(f"{what} must be a C identifier that is not reserved, got {name!r}: {why}")
    return name


def c_ident(name: str) -> str:
    """A lower-case identifier derived from a free name (e.g. ``scrfd-500m`` -> ``scrfd_500m``).

    Runs of other characters become ``_``; a name that would start with a digit, be empty or be
    reserved (see :func:`reserved_reason`) gets an ``m_`` prefix; the stem is cut to
    :data:`MAX_IDENT` characters.
    """
    ident = re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_").lower()[: MAX_IDENT - 2].rstrip("_")
    if not ident:
        return "model"
    return f"m_{ident}" if reserved_reason(ident) is not None else ident
