"""Path parameters that share a prefix with a fixed path, and the words that keeps free.

`POST /items/reembed` sits beside `/items/{item_id}`, and `POST /classes/restore` beside
`DELETE /classes/{name}`. With plain templates `DELETE /classes/restore` would remove a
class named "restore", and a 405 at `/items/reembed` would name GET and DELETE as allowed.
So "reembed" is not an item id and "restore" not a class name: the creating bodies refuse
them (`not_reserved`; the schema states it with the patterns below), and the path templates
use convertors that do not match them, so each URL belongs to one route and its `Allow`
header is true. (pydantic's regex engine has no look-ahead, hence the separate check.)
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.convertors import Convertor, register_url_convertor

__all__ = ["CLASS_NAME", "CLASS_NAME_PATTERN", "ITEM_ID_PATTERN", "not_reserved"]

# No "/" in an item id (it would leave the /items/{item_id} path) and no control characters
ITEM_ID_PATTERN = r"^(?!reembed$)[^/\x00-\x1f]+$"
# A class name may hold a "/" (the shipped model has "T-shirt/top"): the path takes the rest.
# It neither starts nor ends with whitespace: Python's (str.strip) and JavaScript's (\s),
# spelled out so that every regex engine reads the rule alike.
_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_EDGE = f"[^{_SPACE}\x00-\x1f]"
CLASS_NAME = f"{_EDGE}(?:[^\x00-\x1f]*{_EDGE})?"
CLASS_NAME_PATTERN = f"^(?!restore$){CLASS_NAME}$"


def not_reserved(word: str) -> Callable[[str], str]:
    """A validator for a name that refuses `word`, which is a fixed path beside it."""

    def check(value: str) -> str:
        if value == word:
            raise ValueError(f"`{word}` is reserved (it is a path of its own)")
        return value

    return check


class _ItemId(Convertor[str]):
    regex = r"(?!reembed$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _ClassName(_ItemId):
    regex = r"(?!restore$).+"


register_url_convertor("item_id", _ItemId())
register_url_convertor("class_name", _ClassName())
