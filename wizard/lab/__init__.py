"""The built-in lab: simulated Confluence nodes (``node``), a real Apache (``apache``) or moto (``aws``),
in a folder of its own (``folder``, ``files``); ``cluster.Lab`` puts them together. The tests build on
the same classes."""
