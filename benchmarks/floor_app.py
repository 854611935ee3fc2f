"""The framework floor: a bare Flask app answering every webhook with constant TwiML.

It asks for one key, like our check-in does, so the same scripted phone can drive it
through the same number of turns. It checks nothing and stores nothing.
"""

from flask import Flask

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Gather action="http://floor.invalid/voice/step" method="POST" timeout="5" numDigits="4" finishOnKey="#">'
    '<Say voice="Polly.Joanna" language="en-US">Please answer the question.</Say></Gather>'
    '<Redirect method="POST">http://floor.invalid/voice/step?e=noinput</Redirect></Response>'
)

app = Flask(__name__)


@app.post("/voice/answer")
@app.post("/voice/step")
def twiml():
    return TWIML, 200, {"Content-Type": "text/xml"}


@app.post("/voice/status")
def status():
    return "", 204
