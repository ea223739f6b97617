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


def tiff(width, height, pixels, description=None, tile=None, xres=None, unit=None, pages=1):
    """Little-endian TIFF, 8-bit grey, uncompressed: one strip, or 16 x 16 tiles when
    `tile`; optional ImageDescription, X/YResolution (RATIONAL) and ResolutionUnit;
    `pages` identical directories (a page chain, as OME and pyramid writers make)."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")

    def put(data):
        at = len(out)
        out.extend(data)
        if len(out) % 2:
            out.append(0)
        return at

    prev_link = 4
    for _ in range(pages):
        entries = [(256, 4, [width]), (257, 4, [height]), (258, 3, [8]), (259, 3, [1]), (262, 3, [1]),
                   (277, 3, [1])]
        if tile:
            tw = th = 16
            offsets, counts = [], []
            for ty in range(0, height, th):
                for tx in range(0, width, tw):
                    block = bytearray(tw * th)
                    for y in range(th):
                        for x in range(tw):
                            if ty + y < height and tx + x < width:
                                block[y * tw + x] = pixels[(ty + y) * width + tx + x]
                    offsets.append(put(bytes(block)))
                    counts.append(len(block))
            entries += [(322, 3, [tw]), (323, 3, [th]), (324, 4, offsets), (325, 4, counts)]
        else:
            entries += [(273, 4, [put(pixels)]), (278, 4, [height]), (279, 4, [len(pixels)])]
        if description is not None:
            entries.append((270, 2, description.encode() + b"\x00"))
        if xres is not None:
            entries += [(282, 5, [(int(xres * 1000), 1000)]), (283, 5, [(int(xres * 1000), 1000)])]
        if unit is not None:
            entries.append((296, 3, [unit]))
        entries.sort()
        blobs = []
        for tag, typ, vals in entries:
            if typ == 2:
                raw = bytes(vals)
            elif typ == 3:
                raw = struct.pack("<%dH" % len(vals), *vals)
            elif typ == 4:
                raw = struct.pack("<%dI" % len(vals), *vals)
            else:
                raw = b"".join(struct.pack("<II", a, b) for a, b in vals)
            count = len(vals)
            if len(raw) > 4:
                blobs.append((tag, typ, count, struct.pack("<I", put(raw))))
            else:
                blobs.append((tag, typ, count, raw.ljust(4, b"\x00")))
        ifd = put(struct.pack("<H", len(blobs)) + b"".join(struct.pack("<HHI", t, ty, c) + v for t, ty, c, v in blobs)
                  + b"\x00\x00\x00\x00")
        struct.pack_into("<I", out, prev_link, ifd)
        prev_link = ifd + 2 + 12 * len(blobs)
    return bytes(out)


OME = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
       '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="%d" SizeY="%d" '
       'SizeC="%d" SizeZ="1" SizeT="1" PhysicalSizeX="0.25" PhysicalSizeXUnit="%s" PhysicalSizeY="0.25">%s'
       '</Pixels></Image></OME>')


def ome(width, height, channels=1, unit="\u00b5m"):
    chans = "".join('<Channel ID="Channel:0:%d" Name="c%d" SamplesPerPixel="1"/>' % (c, c) for c in range(channels))
    return OME % (width, height, channels, unit, chans)


class Dm:
    """DigitalMicrograph writer: big-endian tag headers, little-endian data (the
    published DM3/DM4 layout)."""

    def __init__(self, version):
        self.v = version
        self.out = bytearray()

    def be(self, v, n):
        self.out += v.to_bytes(n, "big")

    def count(self, v):
        self.be(v, 8 if self.v == 4 else 4)

    def label(self, text):
        self.be(len(text), 2)
        self.out += text.encode()
        if self.v == 4:
            self.be(0, 8)

    def group(self, text, n):
        self.out += b"\x14"
        self.label(text)
        self.out += b"\x00\x00"
        self.count(n)

    def data(self, text, info, payload):
        self.out += b"\x15"
        self.label(text)
        self.out += b"%%%%"
        self.count(len(info))
        for v in info:
            self.count(v)
        self.out += payload

    def u32(self, text, v):
        self.data(text, [5], struct.pack("<I", v))

    def f32(self, text, v):
        self.data(text, [6], struct.pack("<f", v))

    def utf16(self, text, s):
        self.data(text, [20, 4, len(s)], s.encode("utf-16-le"))


def dm_file(version, width, height, data_type=10, elem=2, unit="\u00b5m", thumbnail=False):
    w = Dm(version)
    w.be(version, 4)
    w.be(0, 8 if version == 4 else 4)
    w.be(1, 4)
    w.out += b"\x01\x00"
    w.count(2 if thumbnail else 1)
    images = [(4, 4)] if thumbnail else []
    images.append((width, height))
    w.group("ImageList", len(images))
    for iw, ih in images:
        w.group("", 2)
        w.group("ImageData", 4)
        w.group("Calibrations", 1)
        w.group("Dimension", 2)
        for _ in range(2):
            w.group("", 3)
            w.f32("Origin", 0.0)
            w.f32("Scale", 0.0025)
            w.utf16("Units", unit)
        simple = {1: 2, 2: 6, 6: 10, 7: 3, 9: 9, 10: 4, 11: 5, 12: 7, 23: 5}[data_type]
        n = iw * ih
        w.data("Data", [20, simple, n], bytes((i * 7) % 256 for i in range(n * elem)))
        w.u32("DataType", data_type)
        w.group("Dimensions", 2)
        w.u32("", iw)
        w.u32("", ih)
        w.group("ImageTags", 1)
        w.group("Microscope Info", 1)
        w.f32("Indicated Magnification", 20000.0)
    if thumbnail:
        w.group("Thumbnails", 1)
        w.group("", 1)
        w.u32("ImageIndex", 0)
    w.out += bytes(8)
    return bytes(w.out)


def dms():
    return {
        "dm4_u16": dm_file(4, 3, 2),
        "dm3_u16": dm_file(3, 3, 2),
        "dm4_f32": dm_file(4, 2, 2, data_type=2, elem=4),
        "dm3_u8_thumb": dm_file(3, 5, 4, data_type=6, elem=1, thumbnail=True),
        "dm4_rgba": dm_file(4, 2, 1, data_type=23, elem=4, unit="nm"),
        "dm3_f64": dm_file(3, 2, 2, data_type=12, elem=8, unit="1/nm"),
    }


def prompts():
    return {
        "points_box": b'{"a.png": {"points": [[12, 8, 1], [40, 20, 0]], "box": [1, 2, 30, 26], "multimask": true}}',
        "two": b'{"a": {"box": [5, 5, 9, 7]}, "b.png": {"points": [[3, 4]], "multimask": false}}',
        "mask": b'{"x.png": {"box": [0, 0, 10, 10], "mask_input": "prev.npy"}}',
        "ignored": b'{"c.png": {"points": [[1.5, 2.5, -1], [2, 2, 1]]}}',
        "empty": b"{}",
    }


def ome_xmls():
    return {
        "plain": ome(4, 4, unit="nm").encode(),
        "prefixed": ome(4, 4).replace("<Pixels", "<ome:Pixels").replace("</Pixels", "</ome:Pixels").encode(),
        "channels": (b'<OME><Image><Pixels SizeC="2" PhysicalSizeX="0.5"><Channel Name="DAPI"/>'
                     b'<Channel Name="FITC &amp; co"/></Pixels></Image></OME>'),
        "doctype": b'<!DOCTYPE OME [<!ENTITY a "aa">]><OME><Pixels PhysicalSizeX="&a;"/></OME>',
    }


def serve_requests():
    import base64
    png16 = base64.b64encode(png(16, 16, 0, 8, [bytes(16)] * 16)).decode()
    return {
        "box": b'{"type": "vit_b", "b64img": "", "bbox": [1, 2, 30, 26], "multimask_output": true}',
        "points": b'{"point_coords": [[3, 4], [10.5, 2]], "point_labels": [1, 0]}',
        "mask": ('{"bbox": [0, 0, 8, 8], "b64mask": "%s"}' % png16).encode(),
        "automask": (b'{"points_per_side": 8, "points_per_batch": 64, "pred_iou_thresh": 0.88, '
                     b'"stability_score_thresh": 0.95, "stability_score_offset": 1.0, "box_nms_thresh": 0.7, '
                     b'"crop_n_layers": 1, "crop_nms_thresh": 0.7, "crop_overlap_ratio": 0.34, '
                     b'"crop_n_points_downscale_factor": 2, "min_mask_region_area": 10, '
                     b'"output_type": "Multi-mask (largest)", "include_image_edge": false}'),
        "nested": b'{"bbox": [[[[[[1]]]]]]}',
        "empty": b"{}",
    }


def calibrations():
    def tags(description, xres=300.0, yres=300.0, unit=3, flags=3):
        return b"\x00" + bytes([flags]) + struct.pack("<ffH", xres, yres, unit) + description.encode()
    grey = bytes(range(16))
    return {
        "tags_ome": tags(ome(4, 4, unit="nm")),
        "tags_ome_prefix": tags(ome(4, 4).replace("<Pixels", "<ome:Pixels").replace("</Pixels", "</ome:Pixels")),
        "tags_imagej": tags("ImageJ=1.53t\nunit=\\u00B5m\nspacing=0.5\n", xres=4.0, yres=4.0),
        "tags_imagej_nm": tags("ImageJ=1.53t\nunit=nm\n", xres=0.5, yres=0.5, unit=1),
        "tags_res_inch": tags("", xres=300.0, yres=300.0, unit=2),
        "tags_res_screen": tags("", xres=72.0, yres=72.0, unit=2),
        "tags_reciprocal": tags(ome(4, 4, unit="1/nm")),
        "tif_ome": b"\x01" + tiff(4, 4, grey, description=ome(4, 4)),
        "tif_imagej": b"\x01" + tiff(4, 4, grey, description="ImageJ=1.53t\nunit=micron\n", xres=4.0, unit=1),
        "tif_cm": b"\x01" + tiff(4, 4, grey, xres=5000.0, unit=3),
        "unit_mu": b"\x02\xc2\xb5m",
        "unit_ang": b"\x02\xe2\x84\xab",
        "unit_recip": b"\x02nm^-1",
    }


def slides():
    # The first byte chooses the extension: 0 .tif, 1 .ome.tif, 2 .svs, 3 .png
    px = bytes((x * 3 + y * 5) % 256 for y in range(40) for x in range(40))
    return {
        "tiled": b"\x00" + tiff(40, 40, px, tile=True),
        "tiled_ome_2ch": b"\x01" + tiff(40, 40, px, tile=True, description=ome(40, 40, channels=2), pages=2),
        "strip": b"\x00" + tiff(20, 12, px[:240], xres=20000.0, unit=3),
        "pages_pyramid": b"\x00" + tiff(32, 32, px[:1024], tile=True, pages=2),
        "png": b"\x03" + png(3, 2, 2, 8, [bytes(range(9)), bytes(range(9, 18))]),
    }


def zip_bytes(entries, zip64=False):
    """A stored-only zip archive written from the APPNOTE layout (optionally with zip64
    end records), so that the index's rarer branches have seeds."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        crc = zlib.crc32(data)
        local = len(out)
        n = name.encode()
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data), len(n), 0) + n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, len(data), len(data),
                               len(n), 0, 0, 0, 0, 0, local) + n
    cd_offset = len(out)
    out += central
    if zip64:
        e64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), len(central),
                           cd_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, e64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_offset, 0)
    return bytes(out)


def zips():
    pkl = tensor_pickle()
    recs = [("archive/data.pkl", pkl), ("archive/data/0", struct.pack("<4f", 1, 2, 3, 4)), ("archive/version", b"3\n")]
    return {
        "plain": zip_bytes(recs),
        "zip64": zip_bytes(recs, zip64=True),
        "dot_data_version": zip_bytes([("m/data.pkl", pkl), ("m/.data/version", b"3\n")]),
        "no_version": zip_bytes(recs[:2]),
    }


def main():
    global OUT
    OUT = sys.argv[1] if len(sys.argv) > 1 else "build-fuzz/corpus"
    for target in ("pickle", "pth", "image", "npy", "config_json", "prompts_json", "dm", "calibration",
                   "slide", "zip", "serve_request", "ome_xml"):
        os.makedirs(os.path.join(OUT, target), exist_ok=True)
    for target, seeds in (("pickle", pickles()), ("image", images()), ("npy", npys()),
                          ("config_json", configs()), ("prompts_json", prompts()), ("dm", dms()),
                          ("calibration", calibrations()), ("slide", slides()), ("zip", zips()),
                          ("serve_request", serve_requests()), ("ome_xml", ome_xmls())):
        for name, data in seeds.items():
            with open(os.path.join(OUT, target, name), "wb") as f:
                f.write(data)
    pth_archives()


if __name__ == "__main__":
    main()
