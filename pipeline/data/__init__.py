"""Reading the corpus and making the model's inputs: download, filter, tokenize, the
vocabularies and split, word vectors, truecasing, batches."""
