"""Generative recommenders of this package, by the name ``--model`` takes."""

from recbole_genrec.model.llama_gr import LlamaGR
from recbole_genrec.model.llm_rec import LLMRec
from recbole_genrec.model.tiger import TIGER

GENERATIVE_MODELS = {cls.__name__: cls for cls in (TIGER, LlamaGR, LLMRec)}
