"""The test suite's own ground: the files in tests/data are the ones its README describes, the
birthplace generator remakes its files exactly, and the tests cannot reach the network."""

import hashlib
import os
import re
import socket

import pytest

from conftest import DATA, fixture, run


def readme_table():
    """{path: (bytes, sha256)} from the table in tests/data/README.md."""
    with open(os.path.join(DATA, "README.md"), encoding="utf-8") as f:
        rows = re.findall(r"^\| `([^`]+)` \| ([\d,]+) \| `([0-9a-f]{64})` \|", f.read(), flags=re.M)
    return {path: (int(size.replace(",", "")), sha) for path, size, sha in rows}


def test_every_fixture_is_described_and_matches_its_sha256():
    table = readme_table()
    files = sorted(os.path.relpath(os.path.join(d, f), DATA) for d, _, fs in os.walk(DATA) for f in fs
                   if not f.endswith((".py", ".md", ".pyc")) and "__pycache__" not in d)
    assert files == sorted(table)  # nothing undescribed, nothing missing
    for path, (size, sha) in table.items():
        with open(fixture(path), "rb") as f:
            data = f.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), path
    assert sum(size for size, _ in table.values()) < 6_000_000


def test_make_birthplace_remakes_the_committed_files(tmp_path):
    run("tests/data/make_birthplace.py", f"--out_dir={tmp_path}")
    for name in ("wiki.txt", "birth_places_train.tsv", "birth_dev.tsv", "birth_test_inputs.tsv"):
        assert (tmp_path / name).read_bytes() == open(fixture("birthplace", name), "rb").read(), name


def test_birthplace_files_have_the_course_formats():
    def lines(name):
        with open(fixture("birthplace", name), encoding="utf-8") as f:
            text = f.read()
        assert text.endswith("\n") and "\r" not in text
        return text[:-1].split("\n")

    wiki = lines("wiki.txt")

    def paragraph(person):  # "Name. Text about them ." (a name may hold an initial: "Sao C. Quinwick")
        [line] = [line for line in wiki if line.startswith(person + ". ")]
        return line

    asked = []
    for name in ("birth_places_train.tsv", "birth_dev.tsv"):
        for line in lines(name):
            m = re.fullmatch(r"Where was (.+) born\?\t([^\t]+)", line)
            assert m, line
            person, place = m.groups()
            assert place in paragraph(person)  # the paragraph names the answer
            asked.append(person)
    for line in lines("birth_test_inputs.tsv"):
        m = re.fullmatch(r"Where was (.+) born\?", line)
        assert m, line
        paragraph(m.group(1))
        asked.append(m.group(1))
    assert len(asked) == len(set(asked)) == len(wiki) >= 400  # each person once, every one with a paragraph


def test_connections_off_this_machine_are_refused_and_logged(network_attempts):
    with pytest.raises(OSError, match="tests run offline"):
        socket.create_connection(("example.org", 80), timeout=5)
    with pytest.raises(OSError, match="tests run offline"):
        socket.socket().connect(("93.184.215.14", 443))  # an address, no lookup needed
    assert [a.split(" (pid")[0] for a in network_attempts()] == [
        "a lookup of example.org:80", "a connection to 93.184.215.14:443"]
    # in a script the tests start too, even where the script catches the error itself
    p = run("-c", "import urllib.request\ntry:\n    urllib.request.urlopen('https://example.org', timeout=5)\n"
                  "except OSError as e:\n    print(e)", check=False)
    assert p.returncode == 0 and "tests run offline" in p.stdout
    assert [a.split(" (pid")[0] for a in network_attempts()] == ["a lookup of example.org:443"]


def test_loopback_stays_open():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=5):
            conn, _ = server.accept()
            conn.close()
    assert socket.socket.connect.__module__ == "offline_guard"  # the guard was there, and let it through
