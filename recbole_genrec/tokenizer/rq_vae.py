"""RQ-VAE (TIGER's tokenizer): an MLP autoencoder with a residual quantizer in between.

``x -> encoder -> z``; level ``l`` picks the code nearest to the residual
``r_l`` (``r_0 = z``, ``r_{l+1} = r_l - e_l``); the decoder rebuilds ``x`` from
``z_q = sum_l e_l`` passed straight through to ``z`` for the gradient.  Loss:
``mse(decoder(z_q), x) + sum_l (|sg(r_l) - e_l|^2 + beta |r_l - sg(e_l)|^2)``
(codebook + commitment loss, van den Oord et al. 2017).

* **k-means initialisation**: before training, the codebooks are the residual
  k-means (:mod:`recbole_genrec.tokenizer.rq_kmeans`) of the initial encoder's
  outputs for all items;
* **dead codes**: after every epoch each code no item used in that epoch is
  moved onto the residual of one of the last batch's worst-quantized items at
  that level (largest distance to its code; the count of resets is reported).

Inputs are centred and divided by one scalar (their RMS deviation) for
training; the reconstruction is mapped back to the embedding space.  Seeded
(``torch.manual_seed`` and a seeded batch order): same seed, same inputs, same
thread count -> the same codes.
"""

from time import perf_counter

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from recbole_genrec.tokenizer.quantization import Quantization
from recbole_genrec.tokenizer.rq_kmeans import rq_kmeans


def mlp(widths: list[int]) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def nearest_code(residual: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    dist = ((residual ** 2).sum(1, keepdim=True) - 2 * residual @ codebook.T
            + (codebook ** 2).sum(1))
    return dist.argmin(dim=1)


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, hidden: list[int], latent_dim: int, levels: int,
                 codebook_size: int, beta: float):
        super().__init__()
        self.encoder = mlp([in_dim, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), in_dim])
        self.codebooks = nn.ParameterList(
            nn.Parameter(torch.zeros(codebook_size, latent_dim)) for _ in range(levels))
        self.beta = beta

    def quantize(self, z: torch.Tensor):
        """-> (codes [B, L], z_q [B, d], codebook+commitment loss, residuals per level)."""
        residual, z_q, loss = z, torch.zeros_like(z), z.new_zeros(())
        codes, residuals = [], []
        for book in self.codebooks:
            code = nearest_code(residual.detach(), book.detach())
            e = book[code]
            loss = loss + F.mse_loss(e, residual.detach()) \
                + self.beta * F.mse_loss(residual, e.detach())
            residuals.append(residual.detach())
            codes.append(code)
            z_q = z_q + e
            residual = residual - e.detach()
        return torch.stack(codes, 1), z_q, loss, residuals

    def forward(self, x: torch.Tensor):
        z = self.encoder(x)
        codes, z_q, quant_loss, residuals = self.quantize(z)
        x_hat = self.decoder(z + (z_q - z).detach())
        return F.mse_loss(x_hat, x), quant_loss, codes, residuals

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        z_q = sum(book[codes[:, level]] for level, book in enumerate(self.codebooks))
        return self.decoder(z_q)


def rq_vae(embeddings: np.ndarray, levels: int, codebook_size: int, seed: int,
           hidden: list[int], latent_dim: int, epochs: int, batch_size: int, lr: float,
           beta: float, kmeans_max_iter: int = 300, points_per_code: int = 256) -> Quantization:
    torch.manual_seed(seed)
    x_np = np.asarray(embeddings, dtype=np.float32)
    mean = x_np.mean(axis=0)
    scale = float(np.sqrt(((x_np - mean) ** 2).sum(axis=1).mean() / x_np.shape[1])) or 1.0
    x = torch.from_numpy((x_np - mean) / scale)
    model = RQVAE(x.shape[1], list(hidden), latent_dim, levels, codebook_size, beta)

    with torch.no_grad():  # k-means initialisation of the codebooks
        init = rq_kmeans(model.encoder(x).numpy(), levels, codebook_size, seed,
                         max_iter=kmeans_max_iter, points_per_code=points_per_code)
        for level, book in enumerate(model.codebooks):
            book.copy_(torch.from_numpy(init.codebooks[level]))

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history, resets, start = [], 0, perf_counter()
    for _ in range(epochs):
        usage = torch.zeros(levels, codebook_size, dtype=torch.long)
        total = [0.0, 0.0]
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            recon, quant, codes, residuals = model(x[batch])
            optimizer.zero_grad()
            (recon + quant).backward()
            optimizer.step()
            for level in range(levels):
                usage[level] += torch.bincount(codes[:, level], minlength=codebook_size)
            total[0] += recon.item() * len(batch)
            total[1] += quant.item() * len(batch)
        resets += _reset_dead_codes(model, usage, residuals, codes)
        history.append([t / len(x) for t in total])

    model.eval()
    with torch.no_grad():
        codes, _, _, residuals = model.quantize(model.encoder(x))
    codebooks = [book.detach().numpy().copy() for book in model.codebooks]

    def reconstruct(table: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x_hat = model.decode_codes(torch.from_numpy(np.asarray(table, dtype=np.int64)))
        return x_hat.numpy() * scale + mean

    details = {"rqvae": {"train_s": perf_counter() - start, "epochs": epochs,
                         "dead_codes_reset": resets,
                         "final_recon_loss": history[-1][0] if history else None,
                         "final_quant_loss": history[-1][1] if history else None,
                         "input_scale": scale},
               "kmeans_init": init.details["kmeans"]}
    return Quantization(codes=codes.numpy().astype(np.int64),
                        codebooks=codebooks, last_input=residuals[-1].numpy(),
                        reconstruct=reconstruct, details=details)


def _reset_dead_codes(model: RQVAE, usage: torch.Tensor, residuals: list,
                      codes: torch.Tensor) -> int:
    """Move each level's unused codes onto the residuals (of the last batch) that are
    farthest from their own code; returns how many codes moved."""
    resets = 0
    with torch.no_grad():
        for level, book in enumerate(model.codebooks):
            dead = torch.nonzero(usage[level] == 0).flatten()
            if len(dead) == 0:
                continue
            pool = residuals[level]
            error = ((pool - book[codes[:, level]]) ** 2).sum(1)
            worst = torch.argsort(error, descending=True, stable=True)[:len(dead)]
            book[dead[:len(worst)]] = pool[worst]
            resets += len(worst)
    return resets
