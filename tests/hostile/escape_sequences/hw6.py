"""Hostile submission: escape sequences everywhere a student's text can reach an instructor's
terminal (printed at import and in calls, on stdout and stderr and straight to the file
descriptors, in exception messages): clear the screen, retitle the window, write the clipboard
(OSC 52), an 8-bit CSI, a bidi override, carriage return, backspace and bell. Each visible
marker word sits next to them, so a test can see that the text arrived and the controls did not."""
import os
import sys

ESCAPES = "\x1b[2J\x1b[H\x1b]0;pwned-title\x07\x1b]52;c;cHduZWQ=\x07\x9b31m\u202e\r\x08\x07"

print("printed-at-import" + ESCAPES)
print("stderr-at-import" + ESCAPES, file=sys.stderr)
os.write(1, ("fd-at-import" + ESCAPES + "\n").encode())


def kl_loss(mu, log_sigma):
    print("printed-in-call" + ESCAPES)
    os.write(2, ("fd-in-call" + ESCAPES + "\n").encode())
    raise ValueError("raised-in-call" + ESCAPES)


def viterbi(A, B, pi, O):
    raise RuntimeError(ESCAPES * 3 + "raised-in-viterbi")
