"""Process memory figures shared by the PyTorch benchmark scripts, measured as
benches/support/memory.rs measures tessera."""


def peak_rss(reset):
    """Peak resident set (VmHWM) in bytes, reset first when asked (Linux; 0 elsewhere)."""
    if reset:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # restarts the peak from the current resident set
        except OSError:
            pass
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
