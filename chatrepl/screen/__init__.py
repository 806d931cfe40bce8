"""What both front ends (the REPL and the one-shot) do on the terminal.

render.py      StreamRenderer: an answer streamed as Markdown, finished blocks printed once
live_frame.py  the live region's rows: cropped, erased and redrawn without rich's Live
interrupt.py   Ctrl-C and SIGTERM while an answer streams; echo off, keys dropped
"""
