"""
Raw text for prepare scripts: downloads checked against a checksum (sha256, or the git blob id
that a repository's tree lists), local input files checked for presence and UTF-8, Project
Gutenberg books without their licence, and Hugging Face datasets. Each failure is one line: a
DataError, or a ConnectionError offline that says to pass --input=PATH.
"""

import hashlib
import os
import urllib.request

from data.common import DataError


def checksum_of(path, kind):
    """A file's hex digest: kind 'sha256', or 'git-blob', the id git gives the file's bytes (the
    sha1 of b"blob SIZE\\0" and the bytes: what `git hash-object FILE` prints), which a repository's
    tree lists for each file at each commit: a file can be pinned from that listing alone."""
    h = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def matches(path, checksum):
    """Does the file match checksum, 'sha256:HEX' or 'git-blob:HEX'?"""
    kind, _, want = checksum.partition(":")
    if kind not in ("sha256", "git-blob"):
        raise ValueError(f"checksum {checksum!r}: give 'sha256:HEX' or 'git-blob:HEX'")
    return checksum_of(path, kind) == want


def download(url, dest, checksum, timeout=30):
    """Fetch url to dest, checked against checksum ('sha256:HEX' or 'git-blob:HEX'); skipped when
    dest already holds the right bytes. The bytes go to dest + '.part' first, so a failed or
    interrupted download leaves no dest. Raises ConnectionError with a one-line message when the
    network is unreachable, ValueError when the bytes do not match."""
    if os.path.isfile(dest) and matches(dest, checksum):
        return dest
    tmp = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:  # URLError, socket timeouts and DNS failures are all OSErrors
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ConnectionError(f"could not download {url} ({e}); pass --input=PATH to use a local copy") from None
    if not matches(tmp, checksum):
        os.remove(tmp)
        raise ValueError(f"{url} downloaded, but it does not match {checksum}; the file changed or was damaged")
    os.replace(tmp, dest)
    return dest


def check_input_file(path):
    """Raise DataError unless path is an existing, non-empty file."""
    if not os.path.isfile(path):
        raise DataError(f"{path} does not exist; check --input")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty; give a file with some text in it")


def read_text_file(path):
    """All of a UTF-8 text file as a str (line endings untouched), or a DataError that says
    what is wrong with it."""
    check_input_file(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start:,} is {data[e.start]:#04x}); "
                        f"convert it first, e.g. iconv -f latin1 -t utf-8") from None


# Don Quixote (Cervantes, tr. John Ormsby; Project Gutenberg eBook #996), read by data/don_char and
# data/don: pg996.txt as Project Gutenberg published it ("Most recently updated: March 30, 2023"),
# at a pinned commit of a mirror, so that the checksum keeps matching when Gutenberg re-issues it
DON_QUIXOTE_URL = ("https://raw.githubusercontent.com/P-C-R-P/ML-Don-Quixote/"
                   "5e4568f650fee0400b001f971b57fe3f132803e7/don_quixote.txt")
DON_QUIXOTE_CHECKSUM = "sha256:a1e5d836d41c6877014c7564ad43e0e95c58e76fcb5075f8ab946104a68c3e29"


def strip_gutenberg(text):
    """The book between Project Gutenberg's "*** START OF" and "*** END OF" marker lines, without
    the byte-order mark and the licence around it, with "\\n" line endings (Gutenberg's are CRLF)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start < 0 or end < start:
        raise DataError("no '*** START OF' / '*** END OF' lines: this is not a Project Gutenberg text file")
    start = text.index("\n", start) + 1  # the line after the START marker
    end = text.rfind("\n", 0, end) + 1  # the END marker's line begins here
    return text[start:end].strip() + "\n"


def read_gutenberg(url, checksum, input_path, out_dir):
    """The cleaned book (strip_gutenberg) from input_path, else downloaded once to out_dir/input.txt
    and checked against checksum. Raises DataError, ConnectionError or ValueError (a bad checksum)."""
    path = input_path
    if not path:
        os.makedirs(out_dir, exist_ok=True)
        path = download(url, os.path.join(out_dir, "input.txt"), checksum)
    return strip_gutenberg(read_text_file(path))


def load_hf_dataset(name, config=None, split="train", data_files=None, streaming=False, num_proc=1):
    """datasets.load_dataset with one-line errors: a hub name (needs the network the first
    time), or a builder such as "json" or "text" with local data_files."""
    import datasets
    import huggingface_hub
    huggingface_hub.utils.logging.set_verbosity_error()  # offline, its retry warnings would bury our one line
    kw = {} if streaming else {"num_proc": num_proc if num_proc > 1 else None}
    try:
        return datasets.load_dataset(name, config, split=split, data_files=data_files or None, streaming=streaming, **kw)
    except (ConnectionError, OSError) as e:  # no network, or the hub is unreachable
        raise ConnectionError(f"could not load the Hugging Face dataset {name} ({type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0]}); pass --input=PATH to use local files") from None
    except Exception as e:  # DatasetNotFoundError, a bad split or config name, ...: all one line
        raise DataError(f"could not load the Hugging Face dataset {name}: {type(e).__name__}: "
                        f"{(str(e).splitlines() or [''])[0]}") from None
