"""Call flows as data: the flow language (spec), its loader and checks, and the pure engine.

Nothing in this package imports Flask, SQLAlchemy or Twilio.
"""

from ivr_cbt.callflow.engine import EngineError, resume, start
from ivr_cbt.callflow.loader import FlowError, Problem, load_flow, load_flows

__all__ = ["EngineError", "FlowError", "Problem", "load_flow", "load_flows", "resume", "start"]
