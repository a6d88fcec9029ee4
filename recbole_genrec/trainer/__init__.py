from recbole_genrec.trainer.generative_trainer import GenerativeTrainer
from recbole_genrec.trainer.sequential_trainer import SequentialTrainer, plain_config, plain_value

__all__ = ["GenerativeTrainer", "SequentialTrainer", "plain_config", "plain_value"]
