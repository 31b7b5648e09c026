"""In-domain word vectors: word2vec (gensim) trained on a dataset's unlabelled and training
reviews — never its test reviews — and cached in word2vec text format
(``python -m embedclf.pretrain``, or any run with ``vectors=indomain``).

The vectors are keyed in the cache by the dataset, the tokeniser's word rules and every
training setting, so a second call (or a training run with ``vectors=indomain``) reuses them.
The words are the tokeniser's own (Keras rules), so every vocabulary word can be looked up.
``gensim`` is an optional extra: ``make install-pretrain``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from embedclf.data.dataset import TextDataset
from embedclf.data.tokenstore import as_dataset
from embedclf.text.tokenizer import split_corpus
from embedclf.util.errors import ConfigError
from embedclf.util.fileio import exclusive
from embedclf.util.paths import cache_key
from embedclf.vectors.textformat import write_word2vec

log = logging.getLogger(__name__)

PRETRAIN_FORMAT = 1
INSTALL_HINT = "make install-pretrain (pip install 'embedclf[pretrain]')"


class _Sentences:
    """Re-iterable word lists of the texts (gensim passes over them once per epoch)."""

    def __init__(self, texts: Sequence[str], filters: str, lower: bool) -> None:
        self.texts, self.filters, self.lower = texts, filters, lower

    def __iter__(self) -> Iterator[list[str]]:

        for docs in split_corpus(self.texts, self.filters, self.lower):
            yield from docs


def vectors_path(cache_dir: Path, identity: Mapping[str, Any]) -> Path:

    return cache_dir / "pretrained" / f"word2vec-{cache_key(identity)}.vec"


def pretrained_vectors(
    *,
    source: Path | TextDataset,
    filters: str,
    lower: bool,
    settings: Mapping[str, Any],
    cache_dir: Path,
) -> Path:
    """The cached word2vec text file for ``source`` and ``settings``; trained if absent."""

    settings = dict(settings)
    identity = {
        "format": PRETRAIN_FORMAT,
        "source": as_dataset(source).identity(),
        "filters": filters,
        "lower": lower,
        # every setting, workers included: several workers give other vectors on every run
        "settings": settings,
    }
    path = vectors_path(cache_dir, identity)
    if path.exists():
        log.info("in-domain vectors from the cache: %s", path)
        return path
    with exclusive(path, "in-domain word vectors"):
        if not path.exists():
            _train(source, filters, lower, settings, path)
    return path


def _train(
    source: Path | TextDataset, filters: str, lower: bool, settings: dict[str, Any], path: Path
) -> None:
    try:
        from gensim.models import Word2Vec
        from gensim.models.callbacks import CallbackAny2Vec
    except ImportError:
        raise ConfigError(f"in-domain vectors need gensim: {INSTALL_HINT}") from None
    from tqdm import tqdm

    # gensim logs a line per progress tick at INFO; the progress bar below says as much
    logging.getLogger("gensim").setLevel(logging.WARNING)
    started = time.perf_counter()
    texts, unlabelled = as_dataset(source).read(unlabelled=True)
    corpus = unlabelled + texts.texts["train"]  # never the test reviews
    log.info(
        "training word2vec on %d unlabelled + %d training reviews of %s",
        len(unlabelled),
        len(texts.texts["train"]),
        source,
    )
    epochs = int(settings.get("epochs", 5))

    class Progress(CallbackAny2Vec):
        def __init__(self) -> None:
            self.bar = tqdm(total=epochs, desc="word2vec", unit="epoch")

        def on_epoch_end(self, model: Any) -> None:
            self.bar.update()

        def on_train_end(self, model: Any) -> None:
            self.bar.close()

    try:
        model = Word2Vec(
            sentences=_Sentences(corpus, filters, lower), callbacks=[Progress()], **settings
        )
    except TypeError as err:
        raise ConfigError(f"vectors.pretrain: {err}; see gensim's Word2Vec settings") from None
    keyed = model.wv
    write_word2vec(path, keyed.index_to_key, keyed.vectors)
    log.info(
        "in-domain vectors: %d words x %d in %.1f s -> %s",
        len(keyed.index_to_key),
        keyed.vector_size,
        time.perf_counter() - started,
        path,
    )
