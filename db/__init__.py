"""Database layer: typed SQLAlchemy 2 models, repositories taking a session, migrations."""
