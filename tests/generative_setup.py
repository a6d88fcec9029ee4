"""Build tiny generative models on the ``tiny_dataset`` fixture (shared by tests)."""

from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_genrec.config import GenRecConfig
from recbole_genrec.data.dataset import GenRecDataset
from recbole_genrec.registry import get_trainer

TINY_ARCH = {
    "TIGER": dict(d_model=16, n_heads=2, head_dim=8, d_ff=32, n_encoder_layers=1,
                  n_decoder_layers=2, dropout_prob=0.0),
    "LlamaGR": dict(hidden_size=16, n_layers=2, n_heads=2, intermediate_size=32),
}
GENERATIVE_BACKBONES = list(TINY_ARCH)


def tiny_config(model, tiny, **overrides):
    config_dict = {**tiny.config, **TINY_ARCH[model], "train_batch_size": 64,
                   "micro_batch_size": 32, "eval_batch_size": 64, "epochs": 1,
                   "beam_size": 20, "pruning_rate_users": 8, **overrides}
    return GenRecConfig(model, tiny.name, config_dict=config_dict)


def build(model, tiny, **overrides):
    """-> (config, model, train_data, valid_data, test_data)."""
    config = tiny_config(model, tiny, **overrides)
    init_seed(config["seed"], True)
    dataset = GenRecDataset(config)
    train, valid, test = data_preparation(config, dataset)
    net = config.model_class(config, train._dataset)
    return config, net, train, valid, test


def build_trainer(config, model):
    return get_trainer(config.model_class)(config, model)
