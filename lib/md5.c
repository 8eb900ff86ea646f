/* lib/md5.c — see lib/md5.h. */
#include "lib/md5.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MD5_CHUNK (1 << 18)

bool md5_hex_valid(const char *s)
{
	if (!s)
		return false;
	for (int i = 0; i < MD5_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[MD5_HEX_LEN] == '\0';
}

void md5_hex(const unsigned char digest[16], char out[MD5_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[MD5_HEX_LEN] = '\0';
}

int md5_fd(int fd, char out[MD5_HEX_LEN + 1], const atomic_bool *cancel)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	char *buf = malloc(MD5_CHUNK);
	struct stat sb;
	off_t off = 0, data = -1;
	int err = 0;

	if (!c || !buf || EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1) {
		err = -ENOMEM;
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		err = -errno;
		goto out;
	}
	while (off < sb.st_size) {
		size_t want = sb.st_size - off > MD5_CHUNK ? MD5_CHUNK : (size_t)(sb.st_size - off);
		if (cancel && atomic_load(cancel)) {
			err = -ECANCELED;
			goto out;
		}
		if (data < off) {
			off_t d = lseek(fd, off, SEEK_DATA);
			data = d >= 0 ? d : errno == ENXIO ? sb.st_size : off;
		}
		if (data > off) {               /* a hole: zeros, not read */
			if ((off_t)want > data - off)
				want = (size_t)(data - off);
			memset(buf, 0, want);
			EVP_DigestUpdate(c, buf, want);
			off += (off_t)want;
			continue;
		}
		ssize_t n = pread(fd, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out;
		}
		if (n == 0)
			break;                  /* cut meanwhile: the caller's identity check says so */
		EVP_DigestUpdate(c, buf, (size_t)n);
		off += n;
	}
	if (EVP_DigestFinal_ex(c, dig, &dlen) != 1 || dlen != 16) {
		err = -EIO;
		goto out;
	}
	md5_hex(dig, out);
out:
	free(buf);
	EVP_MD_CTX_free(c);
	return err;
}
