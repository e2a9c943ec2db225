"""`import st_runtime` and encoding with a bundle must work where torch cannot even be imported."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'transformers', 'sentence_transformers', 'optimum'):
                raise ImportError(f'{name} is blocked in this test')
            return None
    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_import_without_torch():
    result = _run(
        """
        import st_runtime, sys
        from st_runtime import SentenceTransformer, CrossEncoder, util
        heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]
        assert not heavy, heavy
        print('OK')
        """
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_blocker_really_blocks():
    result = _run("import torch")
    assert result.returncode != 0 and "blocked" in result.stderr


def test_encode_without_torch(minilm_bundle):
    result = _run(
        f"""
        import sys
        from st_runtime import SentenceTransformer
        model = SentenceTransformer({str(minilm_bundle)!r})
        emb = model.encode(['hello world', 'a second text'])
        assert emb.shape == (2, 384) and str(emb.dtype) == 'float32', emb.shape
        assert not any(m in sys.modules for m in ('torch', 'transformers', 'sentence_transformers'))
        print('OK')
        """
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
