"""The models: the decoder protocol, the GRU family, the Transformer, model directories."""
