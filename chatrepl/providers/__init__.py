"""Model providers: each module turns a list of messages into a stream of text chunks."""
