"""Helpers the browser tests share."""

from concurrent.futures import ThreadPoolExecutor

from django.db import connection

PHONE = {"width": 390, "height": 844}


def in_thread(function, *args, **kwargs):
    """ORM work off Playwright's event loop (Django refuses it there), committed, its connection closed."""

    def work():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result(timeout=30)
