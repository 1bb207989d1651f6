"""Writes the tiny WAV and PNG files the UI tests of the `wav` and `images`
sources read (tests/ui/wav_*.lpn, images_*.lpn). Run from this folder:
`python3 make.py`. Standard library only; every file is under 200 bytes."""
import os, struct, wave, zlib

def wav(path, rate, frames, channels=1):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", (i * 997) % 20000 - 10000) for i in range(frames * channels)))

def png(path, width, height, gray=0):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + bytes([gray] * width) for _ in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

def text(path, content):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(content)

# Classification clips of 32 samples, at 16 kHz, except one at 8 kHz.
wav("clips/no/a.wav", 16000, 32)
wav("clips/yes/b.wav", 16000, 32)
wav("mixed_rates/no/a.wav", 16000, 32)
wav("mixed_rates/yes/b.wav", 8000, 32)
# A clip of another length.
wav("uneven/no/a.wav", 16000, 32)
wav("uneven/yes/b.wav", 16000, 20)
# Recordings for denoising.
wav("recordings/a.wav", 16000, 200)
wav("recordings/b.wav", 16000, 100)
# Files beside class folders.
wav("files_and_folders/a.wav", 16000, 32)
wav("files_and_folders/yes/b.wav", 16000, 32)
# Not a WAV file.
text("corrupt_wav/no/a.wav", "this is not audio\n")
wav("corrupt_wav/yes/b.wav", 16000, 32)
# Images: two classes of 4x4 gray squares.
png("digits/0/a.png", 4, 4, 0)
png("digits/1/b.png", 4, 4, 255)
# A class folder without an image.
png("empty_class/cat/a.png", 4, 4, 0)
text("empty_class/dog/notes.txt", "no image here\n")
# A file named .png that is not one.
png("corrupt_png/0/a.png", 4, 4, 0)
text("corrupt_png/1/b.png", "not a png\n")
