"""Exercise 6.2's visits, counted: SERVER --workers 2, visitors one after another for 3 s (each
reads the stream's response and first part head, then leaves), so some come while a worker that
has served five retires; prints per run the visits, the retirements and how many knocks were
refused or reset."""
import re, socket, subprocess, sys, time

binary, runs = sys.argv[1], int(sys.argv[2])

def visit(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while data.count(b"\r\n\r\n") < 2:  # response head and first part head
                chunk = s.recv(65536)
                if not chunk:
                    return False
                data += chunk
            return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False

with_refusal = 0
for run in range(runs):
    p = subprocess.Popen([binary, "--port", "0", "--workers", "2", "--width", "320", "--height", "240"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = int(re.search(r":(\d+)/", p.stdout.readline()).group(1))
    time.sleep(0.5)
    refused = visits = 0
    until = time.monotonic() + 3
    while time.monotonic() < until:
        visits += 1
        while not visit(port):
            refused += 1
        time.sleep(0.05)
    p.terminate()
    retired = p.communicate()[1].count("retiring it")
    with_refusal += refused > 0
    print(f"run {run + 1}: {visits} visits, {retired} workers retired, {refused} knocks refused or reset")
print(f"{with_refusal} of {runs} runs had at least one")
