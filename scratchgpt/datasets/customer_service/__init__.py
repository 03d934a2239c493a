"""The bundled customer-service dialogues: ``train.csv``, ``test.csv`` and their generator
(``generate.py`` with ``templates_en.py`` / ``templates_zh.py``). See ``README.md``."""
