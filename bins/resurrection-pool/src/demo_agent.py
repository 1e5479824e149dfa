"""A demo agent of the Nexus health suite: a tiny "consciousness loop".

Every cycle it beats through the nexus-heartbeat CLI (like any agent that
cannot link the Rust library), and it answers on a TCP port (its gateway).
Started by the resurrection pool in its mission cell: the working directory
is the cell's workspace and LAZARUS_CELL_UUID / LAZARUS_AGENT are set.
"""
import os
import socket
import subprocess
import sys
import threading
import time


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    while True:
        conn, _ = s.accept()
        conn.close()


def main():
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    name = args.get("--name") or os.environ.get("LAZARUS_AGENT", "agent")
    port = int(args["--port"])
    beat = args["--heartbeat-bin"]
    path = os.path.join("..", ".lazarus", "heartbeats", name + ".json")
    threading.Thread(target=serve, args=(port,), daemon=True).start()
    cycle = 0
    while True:
        cycle += 1
        subprocess.run(
            [beat, "beat", "--path", path, "--cycle", str(cycle), "--model", "demo",
             "--status", "thinking", "--agent", name, "--pid", str(os.getpid()), "--no-fsync"],
            check=False,
        )
        time.sleep(0.5)


main()
