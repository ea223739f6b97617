#!/usr/bin/env python3
"""Writes the small seed corpora of the fuzz targets into OUT/<target>/ (a few KB in
all; nothing binary is committed). Python standard library only (no torch/numpy):
every seed is assembled here from its format's definition.

    python3 fuzz/make_corpus.py build-fuzz/corpus
"""
import collections
import os
import pickle
import struct
import sys
import zipfile
import zlib


def tensor_pickle(numel=4, sizes=(2, 2), strides=(2, 1), key="0", storage="FloatStorage"):
    """What torch.save writes for a state dict {'w': tensor}: an OrderedDict REDUCE,
    a persistent id ('storage', torch.<X>Storage, key, 'cpu', numel) and a
    _rebuild_tensor_v2(storage, 0, sizes, strides, False, OrderedDict()) call."""
    def binint(v):
        return b"J" + struct.pack("<i", v)

    def tup(vs):
        return b"(" + b"".join(binint(v) for v in vs) + b"t"

    def uni(s):
        b = s.encode()
        return b"X" + struct.pack("<I", len(b)) + b

    p = b"\x80\x02" + b"ccollections\nOrderedDict\nq\x00)Rq\x01"
    p += uni("w")
    p += b"ctorch._utils\n_rebuild_tensor_v2\nq\x02("
    p += b"(" + uni("storage") + b"ctorch\n" + storage.encode() + b"\nq\x03" + uni(key) + uni("cpu")
    p += binint(numel) + b"tq\x04Q" + binint(0) + tup(sizes) + tup(strides)
    p += b"\x89ccollections\nOrderedDict\n)Rtq\x05Rq\x06s."
    return p


def pickles():
    plain = {"epoch": 3, "best": 0.875, "name": "glomsam", "big": 1 << 40, "neg": -3,
             "list": [1, 2.5, None, True, "x"], "tuple": (1, (2, 3)), "bytes": b"\x00\x01"}
    out = {}
    for proto in (0, 1, 2, 4, 5):
        out["plain_p%d" % proto] = pickle.dumps(plain, protocol=proto)
        out["ordered_p%d" % proto] = pickle.dumps(collections.OrderedDict(a=1, b=[2, 3]), protocol=proto)
    shared = [1, 2]
    out["shared"] = pickle.dumps({"a": shared, "b": shared, "c": (shared, shared)}, protocol=2)
    out["tensor"] = tensor_pickle()
    out["tensor_half"] = tensor_pickle(numel=8, sizes=(8,), strides=(1,), key="1", storage="HalfStorage")
    out["tensor_empty"] = tensor_pickle(numel=0, sizes=(0, 3), strides=(3, 1), key="3")
    return out


def pth_archives():
    out = {}
    for name, pkl, records in [
        ("tensor", tensor_pickle(), {"0": struct.pack("<4f", 1, 2, 3, 4)}),
        ("half", tensor_pickle(numel=2, sizes=(2,), strides=(1,), storage="HalfStorage"),
         {"0": b"\x00\x3c\x00\x40"}),
        ("plain", pickle.dumps({"epoch": 1, "model": {}}, protocol=2), {}),
    ]:
        path = os.path.join(OUT, "pth", name)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", pkl)
            for key, data in records.items():
                z.writestr("archive/data/" + key, data)
            z.writestr("archive/version", "3\n")
        out[name] = None  # written directly
    return out


def png(width, height, color_type, bit_depth, rows):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def tiff_grey(width, height, pixels):
    """Baseline little-endian TIFF, one uncompressed 8-bit strip."""
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1), (278, 3, 1, height),
               (279, 4, 1, len(pixels))]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_offset
        ifd += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + b"\x00\x00\x00\x00" + pixels


def bmp_rgb(width, height):
    row = bytes([10, 20, 30] * width)
    row += b"\x00" * ((4 - len(row) % 4) % 4)
    pixels = row * height
    header = b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def images():
    # The first byte chooses the extension: 0 .png, 1 .tif, 2 .jpg, 3 .bmp, 4 .pgm, 5 .ppm
    return {
        "png_rgb": b"\x00" + png(3, 2, 2, 8, [bytes(range(9)), bytes(range(9, 18))]),
        "png_grey16": b"\x00" + png(2, 2, 0, 16, [b"\x00\x01\xff\xff", b"\x12\x34\x00\x00"]),
        "png_palette_less_grey": b"\x00" + png(4, 1, 0, 8, [b"\x00\x40\x80\xff"]),
        "tif_grey": b"\x01" + tiff_grey(2, 2, b"\x00\x40\x80\xff"),
        "bmp_rgb": b"\x03" + bmp_rgb(2, 2),
        "pgm": b"\x04" + b"P5\n3 2\n255\n" + bytes(range(6)),
        "ppm": b"\x05" + b"P6\n2 1\n255\n" + bytes(range(6)),
    }


def npy(descr, shape, payload, fortran=False):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, repr(tuple(shape)))
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def npys():
    return {
        "f4": npy("<f4", (2, 3), struct.pack("<6f", *range(6))),
        "u1": npy("|u1", (4,), b"\x00\x01\x02\x03"),
        "i8": npy("<i8", (1, 2), struct.pack("<2q", -1, 7)),
        "b1": npy("|b1", (2,), b"\x00\x01"),
        "fortran": npy("<f4", (2, 2), struct.pack("<4f", 1, 2, 3, 4), fortran=True),
        "scalar": npy("<f8", (), struct.pack("<d", 0.5)),
    }


def configs():
    # The first byte chooses the reader: 0 GlomSAM (text), 1 SAM (file), 2 DINOv2 (file).
    return {
        "glomsam": b"\x00" + b'{"config": {"img_size": 160, "patch_size": 16, "encoder_embed_dim": 48, '
                             b'"encoder_depth": 4, "encoder_num_heads": 3, "encoder_global_attn_indexes": [1, 3]}}',
        "glomsam_empty": b"\x00{}",
        "sam": b"\x01" + b'{"encoder_embed_dim": 768, "encoder_depth": 12, "encoder_num_heads": 12, '
                         b'"encoder_global_attn_indexes": [2, 5, 8, 11], "img_size": 1024}',
        "dinov2": b"\x02" + b'{"embed_dim": 384, "depth": 12, "num_heads": 6, "patch_size": 14, "img_size": 518}',
    }


def main():
    global OUT
    OUT = sys.argv[1] if len(sys.argv) > 1 else "build-fuzz/corpus"
    for target in ("pickle", "pth", "image", "npy", "config_json"):
        os.makedirs(os.path.join(OUT, target), exist_ok=True)
    for target, seeds in (("pickle", pickles()), ("image", images()), ("npy", npys()),
                          ("config_json", configs())):
        for name, data in seeds.items():
            with open(os.path.join(OUT, target, name), "wb") as f:
                f.write(data)
    pth_archives()


if __name__ == "__main__":
    main()
