"""Item -> semantic-ID tokenizer (``python -m recbole_genrec.tokenize``).

One module per step:

* ``settings``        options, defaults from ``properties/tokenizer.yaml``
* ``item_file``       the RecBole ``.item`` atomic file: read, replace ``sem_ids``
* ``text_embeddings`` item text -> embeddings (sentence-transformers, cached)
* ``rq_kmeans``       residual k-means (scikit-learn), optionally balanced
* ``balanced_assignment`` size-constrained assignment of items to codes
* ``rq_vae``          residual-quantized VAE (torch)
* ``collisions``      re-assign items sharing a full code to a free last-level code
* ``code_report``     quality report of any code table (also used by the converter)
* ``tokenize_dataset`` the whole run: checks, embeddings, codes, files, report
"""
