"""A product's own repository and a project mirroring it, as an admin would have added it."""

import subprocess

import pytest

from projects.models import Project

LIB = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
TEST = "from shop.greeting import greet\n\n\ndef test_greet():\n    assert greet('Ada') == 'Hello, Ada!'\n"


def git(*args, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def product(tmp_path):
    """A product's own repository: a package with a passing test, on branch main."""
    repo = tmp_path / "product"
    (repo / "shop").mkdir(parents=True)
    (repo / "shop" / "__init__.py").write_text("")
    (repo / "shop" / "greeting.py").write_text(LIB)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_greeting.py").write_text(TEST)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=PM", "-c", "user.email=pm@example.com", "commit", "-q", "-m", "Initial product", cwd=repo)
    return repo


@pytest.fixture
def project(product, settings, tmp_path):
    settings.MIRRORS_DIR = tmp_path / "mirrors"
    settings.GIT_STORE_DIR = tmp_path / "store"
    mirror = settings.MIRRORS_DIR / "shop.git"
    subprocess.run(["git", "clone", "-q", "--mirror", str(product), str(mirror)], check=True)
    head = git("rev-parse", "HEAD", cwd=product)
    return Project.objects.create(name="Shop", slug="shop", git_url=str(product), head_sha=head)
