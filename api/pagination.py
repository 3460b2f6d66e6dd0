from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination

PAGE_DEFAULT = 20
PAGE_MAX = 100
OFFSET_MAX = 10**9


class Page(LimitOffsetPagination):
    """``?limit=&offset=``; answers ``{"count": n, "items": [...]}``. A limit over PAGE_MAX is a 422, not a surprise."""

    class Input(Schema):
        limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX, description=f"At most {PAGE_MAX}.")
        # Bounded: a number past the database's integer range is a 422, not a 500 from the query.
        offset: int = Field(0, ge=0, le=OFFSET_MAX)

    def __init__(self, **kwargs):
        super().__init__(max_limit=PAGE_MAX, **kwargs)
