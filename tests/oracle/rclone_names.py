#!/usr/bin/env python3
"""Cross-check net/names against the real rclone 1.60.1 binary.

rclone's local backend, given the jottacloud 1.60.1 encoding, writes and lists
files exactly as the jottacloud backend names them on the server. So:

* encode: `rclone touch :local,encoding=...:DIR/ARG` creates the server name
  of plain name Standard.Decode(ARG); compare with names_encode_legacy().
* decode: create a file named like a server name, `rclone lsf` prints
  Standard.Encode(Jotta.Decode(name)); compare with names_decode_raw().
* random: copy many random plain names (seeded) from a local directory into an
  encoded one in one `rclone copy` and compare the resulting names.

rclone 1.60.1 has no Percent class, so for names with '％' the HEAD decoder
(ours) is compared with what 1.60.1 gives when ％ is an ordinary character.

Usage: tests/oracle/rclone_names.py [--random N] [--seed S]
Needs rclone and cc; builds a small helper from net/names.c in a temp dir.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile

ENC = 'Slash,LtGt,DoubleQuote,Colon,Question,Asterisk,Pipe,Del,Ctl,InvalidUtf8,Dot'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HELPER = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/names.h"
/* helper MODE: stdin bytes -> stdout bytes. Records of
 * <4-byte length><bytes> in, same out (length 0xFFFFFFFF = error). */
int main(int argc, char **argv) {
	unsigned char h[4];
	while (fread(h, 1, 4, stdin) == 4) {
		size_t n = (size_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		char *in = malloc(n + 1), *out = NULL; size_t ol = 0; int rc;
		if (!in || fread(in, 1, n, stdin) != n) return 2;
		in[n] = 0;
		if (!strcmp(argv[1], "enc")) rc = names_encode(in, n, &out);
		else if (!strcmp(argv[1], "legacy")) rc = names_encode_legacy(in, n, &out);
		else if (!strcmp(argv[1], "dec")) rc = names_decode(in, &out);
		else rc = names_decode_raw(in, &out, &ol);
		if (rc) { fwrite("\xff\xff\xff\xff", 1, 4, stdout); free(in); continue; }
		if (!ol) ol = strlen(out);
		unsigned char o[4] = { ol >> 24, ol >> 16, ol >> 8, ol };
		fwrite(o, 1, 4, stdout); fwrite(out, 1, ol, stdout);
		free(in); free(out);
	}
	return 0;
}
'''


class Names:
    """Runs net/names through the helper, many names per process."""

    def __init__(self, tmp):
        src = os.path.join(tmp, 'helper.c')
        self.bin = os.path.join(tmp, 'helper')
        with open(src, 'w') as f:
            f.write(HELPER)
        subprocess.run(['cc', '-O1', '-I', ROOT, '-o', self.bin, src,
                        os.path.join(ROOT, 'net/names.c')], check=True)

    def run(self, mode, items):
        data = b''.join(len(x).to_bytes(4, 'big') + x for x in items)
        out = subprocess.run([self.bin, mode], input=data, capture_output=True,
                             check=True).stdout
        res, i = [], 0
        while i < len(out):
            n = int.from_bytes(out[i:i + 4], 'big')
            i += 4
            if n == 0xFFFFFFFF:
                res.append(None)
            else:
                res.append(out[i:i + n])
                i += n
        return res

    def one(self, mode, x):
        return self.run(mode, [x])[0]


def go_runes(b):
    """Iterate like Go's `for range`: yields (bytes, valid)."""
    i = 0
    while i < len(b):
        c = b[i]
        n = 1 if c < 0x80 else 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF \
            else 4 if 0xF0 <= c <= 0xF4 else 0
        if n and i + n <= len(b):
            try:
                b[i:i + n].decode('utf-8')
                yield b[i:i + n], True
                i += n
                continue
            except UnicodeDecodeError:
                pass
        yield b[i:i + 1], False
        i += 1


def std_enc(b):
    """rclone's Standard encoding (Zero|Slash|Ctl|Del|Dot): what lsf prints."""
    fw, q = '．'.encode(), '‛'.encode()
    whole = {b'.': fw, b'..': fw + fw, fw: q + fw, fw + fw: q + fw + q + fw}
    if b in whole:
        return whole[b]
    out = b''
    for ch, ok in go_runes(b):
        if not ok:
            out += ch
            continue
        r = ord(ch.decode())
        if r == 0:
            out += '␀'.encode()
        elif r in (0x2400, 0x201B, 0xFF0F, 0x2421) or 0x2401 <= r <= 0x241F:
            out += q + ch
        elif r == 0x2F:
            out += '／'.encode()
        elif r == 0x7F:
            out += '␡'.encode()
        elif 1 <= r <= 0x1F:
            out += chr(0x2400 + r).encode()
        else:
            out += ch
    return out


def rclone(*args):
    return subprocess.run(['rclone', '--config', '/dev/null', *args], capture_output=True)


def fresh(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)


u = str.encode
# (argument given to rclone, i.e. the Standard encoding of the plain name; plain name)
ENC_CASES = [
    (b'a?b', None), (u('a？b'), None), (b'.', None), (b'..', None),
    (u('‛．'), u('．')), (u('‛．‛．'), u('．．')),
    (b'a\xffb', None), (b'a\xc3b', None), (b'\xe2\x80', None),
    (b'a\x01b', None), (u('a‛␁b'), u('a␁b')), (b'a\x7fb', None),
    (u('x‛‛y'), u('x‛y')), (u('‛‛'), u('‛')),
    (b'a*b<c>d|e"f:g', None), (b'a%b', None), (u('a％b'), None),
    (b'back\\slash', None), (b' lead', None), (b'trail ', None), (b'dot.', None),
    (u('a\ufffdb'), None),
    (b'over\xc0\xafong', None), (b'over3\xe0\x80\xafx', None), (b'over4\xf0\x80\x80\xafx', None),
    (b'sur\xed\xa0\x80x', None), (b'big\xf4\x90\x80\x80x', None), (b'f5\xf5\x80\x80\x80', None),
    (b'trunc\xe2\x80Ax', None), (b'trunc4\xf0\x9f\x98', None),
    (u('emoji😀ok'), None), (u('max\U0010ffff'), None),
    (u('q＂＊：＜＞？｜‛␡'), u('q＂＊：＜＞？｜␡')),
    (u('‛␀nul'), u('␀nul')), (u('‛‛41'), u('‛41')), (u('‛／sl'), u('／sl')),
    (b'\x1f\x0a\x0d\x09tabs', None),
    (b'.hidden', None), (b'...', None), (u('．x'), None), (u('x．．'), None),
    (u('␠sp'), None), (u('＼＃'), None), (b'\xef\xbf\xbe', None), (u('漢字'), None),
    (b'\xf0\x82\x80\x9b', None),
]

DEC_CASES = [x if isinstance(x, bytes) else u(x) for x in [
    'x‛41y', 'a‛Zb', 'a‛4', 'tail‛', 'a‛ffb', 'a‛C3‛A6b', 'a‛‛b', 'a？b', 'a‛？b', '‛．', '‛．‛．',
    'a＊b＜c＞d｜e＂f：g', 'a␡b', 'a‛␡b', 'a␁b', 'a‛␁b', 'a％b', 'a‛％b', 'msf:1.jpg', 'x‛‛41',
    'a‛4g', 'a‛g4', '‛‛‛', 'a‛ＡＢ', 'a‛é', '‛', 'end‛‛', 'a‛0a', 'x‛FF‛FE', 'pre‛‛‛41',
    b'raw\xffbyte', b'q\xe2\x80\x9b\xff', 'a‛␀b', 'a␠b', '‛2E', '‛2E‛2E', '.x', '‛7F', '‛1F',
    'a／b', '‛2F', 'x␀y', '‛00z', 'a‛／b', '．', '．．', 'ａ：ｂ', b'ov\xc0\xaf', b'\xe2\x80',
    b'\xef\xbc', '‛0x1', '‛_1', 'a‛aB', '‛１２',
]]


def random_plain(rng, maxlen):
    pieces = [u(c) for c in '＂＊／：＜＞？｜％␀␁␟␡␠‛‛．\ufffdæ😀＼'] + \
        [b'\xe2\x80', b'\xef\xbc', u('‛4'), b'..']
    special = b'"*:<>?|%.\\ #;~+\x7f'
    out = b''
    for _ in range(rng.randint(1, maxlen)):
        k = rng.randrange(100)
        if k < 15:
            out += bytes([rng.choice(special)])
        elif k < 22:
            out += bytes([rng.randrange(1, 0x20)])
        elif k < 37:
            out += bytes([rng.randrange(0x80, 0x100)])
        elif k < 47:
            out += bytes([rng.choice(b'0123456789abcdefABCDEF')])
        elif k < 70:
            out += rng.choice(pieces)
        else:
            out += bytes([rng.randrange(ord('a'), ord('z') + 1)])
    return out.replace(b'/', b'_').replace(b'\0', b'_')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--random', type=int, default=2000, help='random names for the copy test')
    ap.add_argument('--seed', type=int, default=1)
    args = ap.parse_args()
    if not shutil.which('rclone'):
        print('rclone not installed', file=sys.stderr)
        return 2
    ok = bad = 0
    tmp = tempfile.mkdtemp(prefix='names-oracle-')
    try:
        names = Names(tmp)
        x = os.path.join(tmp, 'x').encode()
        for arg, plain in ENC_CASES:
            plain = plain or arg
            fresh(x)
            r = rclone('touch', f':local,encoding="{ENC}":'.encode() + x + b'/' + arg)
            got, want = os.listdir(x), names.one('legacy', plain)
            if r.returncode == 0 and got == [want]:
                ok += 1
            else:
                bad += 1
                print('encode differs:', plain, 'rclone', got, r.stderr[-200:], 'ours', want)

        pct, pua = u('％'), u('\ue000')
        for s in DEC_CASES:
            fresh(x)
            open(os.path.join(x, s), 'wb').close()
            r = rclone('lsf', f':local,encoding="{ENC}":'.encode() + x)
            # 1.60.1 has no Percent class: ％ behaves like any other character
            ours = names.one('raw', s.replace(pct, pua))
            want = b'<error>' if ours is None else std_enc(ours.replace(pua, pct)) + b'\n'
            if r.returncode == 0 and r.stdout == want:
                ok += 1
            else:
                bad += 1
                print('decode differs:', s, 'rclone', r.stdout, r.stderr[-200:], 'ours', want)

        if args.random:
            rng = random.Random(args.seed)
            src, dst = os.path.join(tmp, 'src').encode(), os.path.join(tmp, 'dst').encode()
            fresh(src)
            fresh(dst)
            plains = set()
            while len(plains) < args.random:
                p = random_plain(rng, 40)
                if p in (b'.', b'..'):
                    continue
                # the source is read with encoding None, which only unquotes ‛ and ␀
                fname = p.replace(u('‛'), u('‛‛')).replace(u('␀'), u('‛␀'))
                if len(fname) > 255 or len(names.one('legacy', p) or b'x' * 256) > 255:
                    continue
                plains.add(p)
                open(os.path.join(src, fname), 'wb').close()
            plains = sorted(plains)
            r = rclone('copy', b':local,encoding="None":' + src,
                       f':local,encoding="{ENC}":'.encode() + dst)
            got = set(os.listdir(dst))
            want = set(names.run('legacy', plains))
            if r.returncode == 0 and got == want:
                ok += len(plains)
            else:
                bad += len(want - got)
                print('random copy: %d names differ; rclone only: %r; ours only: %r'
                      % (len(want - got), sorted(got - want)[:5], sorted(want - got)[:5]),
                      r.stderr[-300:])
        print(f'rclone 1.60.1 and net/names agree on {ok} names, differ on {bad} '
              f'({len(ENC_CASES)} encode, {len(DEC_CASES)} decode, {args.random} random)')
        return 1 if bad else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
