"""Flask extensions, created unbound and bound to the app in `create_app`."""

from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
sock = Sock()
migrate = Migrate()
