"""Report writers: each turns the finished result store into one output format."""
