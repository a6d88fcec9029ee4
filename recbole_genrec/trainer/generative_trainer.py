from recbole_genrec.trainer.sequential_trainer import SequentialTrainer


class GenerativeTrainer(SequentialTrainer):
    pass
