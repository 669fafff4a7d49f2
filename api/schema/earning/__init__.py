"""Earning (issue 3): enums, output types, and the inputs and payloads of both endpoints."""
from api.schema.earning.admin_inputs import *  # noqa: F401,F403
from api.schema.earning.enums import *  # noqa: F401,F403
from api.schema.earning.inputs import *  # noqa: F401,F403
from api.schema.earning.types import *  # noqa: F401,F403
