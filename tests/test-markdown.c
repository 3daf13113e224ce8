/*
 * test-markdown.c - Markdown laid out for the terminal (ui/markdown.c):
 * headings, emphasis, lists, quotes, tables, fenced code with colours,
 * <br> and autolinks,
 * /copy code's block, and hostile input (unterminated fences, a 500-column
 * table, wide characters, escape sequences and control bytes, deep nesting,
 * long words, random bytes, every prefix of a streamed answer), each
 * checked for lines no wider than asked and text safe for a terminal.
 */
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "markdown.h"
#include "t.h"
#include "util.h"
#include "wrap.h"

#define ZHONG "\xe4\xb8\xad" /* U+4E2D, 2 columns */
#define WEN   "\xe6\x96\x87" /* U+6587 */
#define THUMB "\xf0\x9f\x91\x8d"
#define FAMILY                                                                          \
	"\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7" /* 6 \
										      cols */

static struct md_doc doc;

/* The text of line i, NUL-terminated (static). */
static const char *
line(int i)
{
	static char buf[65536];
	const struct md_line *l;

	if (i < 0 || i >= doc.n_lines)
		return "(no such line)";
	l = &doc.lines[i];
	snprintf(buf, sizeof(buf), "%.*s", (int)l->len, doc.text + l->off);
	return buf;
}

/* The span of line i that covers its byte k. */
static const struct md_span *
span_at(int i, size_t k)
{
	const struct md_line *l = &doc.lines[i];

	for (int s = l->span; s < l->span + l->n_spans; s++)
		if (doc.spans[s].off <= l->off + k &&
		    l->off + k < doc.spans[s].off + doc.spans[s].len)
			return &doc.spans[s];
	return NULL;
}

/* The span of line i whose text starts with word (first match). */
static const struct md_span *
span_of(int i, const char *word)
{
	const char *s = line(i), *f = strstr(s, word);

	return f != NULL ? span_at(i, (size_t)(f - s)) : NULL;
}

/* Whether the bytes are safe for a terminal: no C0, DEL or C1 control, valid UTF-8. */
static bool
safe(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

/*
 * What every render must give: lines no wider than width, their widths as
 * measured, spans in order covering each line's text, nothing unsafe.
 */
static bool
check_doc(int width)
{
	bool ok = true;

	width = width < 1 ? 1 : width;
	for (int i = 0; i < doc.n_lines && ok; i++) {
		const struct md_line *l = &doc.lines[i];
		size_t at = l->off;

		ok = l->width <= width && wrap_width(doc.text + l->off, l->len) == l->width &&
		     safe(doc.text + l->off, l->len) && l->off + l->len <= doc.len;
		for (int s = l->span; ok && s < l->span + l->n_spans; s++) {
			ok = doc.spans[s].off == at && doc.spans[s].len > 0 &&
			     doc.spans[s].role < MD_ROLES;
			at += doc.spans[s].len;
		}
		ok = ok && at == l->off + l->len;
		if (!ok)
			fprintf(stderr, "bad line %d (width %d of %d): '%s'\n", i, l->width, width,
				line(i));
	}
	return ok;
}

static void
render(const char *s, int width)
{
	md_render(&doc, s, strlen(s), width);
}

/* The display column of the n-th occurrence (from 0) of needle on line i, or -1. */
static int
col_of(int i, const char *needle, int nth)
{
	const char *s = line(i), *f = s;

	for (int k = 0; f != NULL && k <= nth; k++)
		if ((f = strstr(k == 0 ? s : f + 1, needle)) == NULL)
			return -1;
	return wrap_width(s, (size_t)(f - s));
}

static void
test_blocks(void)
{
	render("# Title\n\nSome *it* and **bold**, `code`, _under_ snake_case_name.\n"
	       "## Sub #\nText",
	       80);
	T_ASSERT(check_doc(80));
	T_ASSERT(strcmp(line(0), "Title") == 0);
	T_ASSERT(span_of(0, "Title")->role == MD_HEADING);
	T_ASSERT(span_of(0, "Title")->attr == (MD_BOLD | MD_UNDERLINE));
	T_ASSERT(strcmp(line(1), "") == 0);
	T_ASSERT(strcmp(line(2), "Some it and bold, code, under snake_case_name.") == 0);
	T_EQ_INT(span_of(2, "it ")->attr, MD_ITALIC);
	T_EQ_INT(span_of(2, "bold")->attr, MD_BOLD);
	T_EQ_INT(span_of(2, "code")->role, MD_CODE);
	T_EQ_INT(span_of(2, "under")->attr, MD_ITALIC);
	T_EQ_INT(span_of(2, "snake")->attr, 0);
	T_ASSERT(strcmp(line(3), "Sub") == 0);
	T_ASSERT(strcmp(line(4), "Text") == 0);
	T_EQ_INT(doc.n_lines, 5);

	/* Stray stars and unclosed markup stay as they are. */
	render("2 * 3 * 4 and **not closed and `tick", 80);
	T_ASSERT(strcmp(line(0), "2 * 3 * 4 and **not closed and `tick") == 0);
	render("a \\*b\\* [link](http://x.org) [same](same)", 80);
	T_ASSERT(strcmp(line(0), "a *b* link (http://x.org) same") == 0);
	T_EQ_INT(span_of(0, "link")->role, MD_LINK);
	T_EQ_INT(span_of(0, "(http")->role, MD_URL);

	/* A setext heading, a rule, a quote. */
	render("Head\n===\n\n---\n> quoted *text*\n> more\n\n>> deeper", 20);
	T_ASSERT(check_doc(20));
	T_ASSERT(strcmp(line(0), "Head") == 0 && span_of(0, "Head")->role == MD_HEADING);
	T_EQ_INT(col_of(2, "\xe2\x94\x80", 19), 19); /* a rule 20 columns wide */
	T_EQ_INT(doc.lines[2].width, 20);
	T_ASSERT(strcmp(line(3), "\xe2\x94\x82 quoted text more") == 0);
	T_EQ_INT(span_at(3, 0)->role, MD_QUOTE);
	T_ASSERT(strcmp(line(5), "\xe2\x94\x82 \xe2\x94\x82 deeper") == 0);
}

static void
test_lists(void)
{
	render("- one\n- two is long enough to wrap here\n  1. nested\n  2. next\n- three\n"
	       "\n  a later paragraph\n\nafter",
	       20);
	T_ASSERT(check_doc(20));
	T_ASSERT(strcmp(line(0), "\xe2\x80\xa2 one") == 0);
	T_EQ_INT(span_at(0, 0)->role, MD_MARKER);
	T_ASSERT(strcmp(line(1), "\xe2\x80\xa2 two is long enough") == 0);
	T_ASSERT(strcmp(line(2), "  to wrap here") == 0); /* hanging indent */
	T_ASSERT(strcmp(line(3), "  1. nested") == 0);
	T_ASSERT(strcmp(line(4), "  2. next") == 0);
	T_ASSERT(strcmp(line(5), "\xe2\x80\xa2 three") == 0);
	T_ASSERT(strcmp(line(6), "") == 0);
	T_ASSERT(strcmp(line(7), "  a later paragraph") == 0);
	T_ASSERT(strcmp(line(9), "after") == 0);
	/* Not a list: emphasis at a line's start. */
	render("*it* and **b**", 40);
	T_ASSERT(strcmp(line(0), "it and b") == 0);
}

static void
test_table(void)
{
	render("| a | bb |\n|---|--:|\n| ccc | d |\n| " ZHONG WEN " | " THUMB " |", 40);
	T_ASSERT(check_doc(40));
	T_ASSERT(strcmp(line(0), "a    \xe2\x94\x82 bb") == 0);
	T_EQ_INT(span_of(0, "a")->attr, MD_BOLD);
	T_ASSERT(strcmp(line(1), "\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80"
				 "\xe2\x94\xbc\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80") == 0);
	T_ASSERT(strcmp(line(2), "ccc  \xe2\x94\x82  d") == 0); /* right-aligned */
	T_ASSERT(strcmp(line(3), ZHONG WEN " \xe2\x94\x82 " THUMB) == 0);
	/* The bars line up, wide characters or not, and the rule's cross is under them. */
	for (int i = 0; i < 4; i++)
		T_EQ_INT(col_of(i, i == 1 ? "\xe2\x94\xbc" : "\xe2\x94\x82", 0), 5);

	/* Wider than the screen: columns shrink and cells wrap; bars still line up. */
	render("| name | description |\n|---|---|\n"
	       "| x | a rather long description that has to wrap in its cell |\n"
	       "| " ZHONG ZHONG ZHONG ZHONG ZHONG ZHONG " | " FAMILY FAMILY " |",
	       24);
	T_ASSERT(check_doc(24));
	T_ASSERT(doc.n_lines > 5);
	for (int i = 0; i < doc.n_lines; i++)
		T_EQ_INT(col_of(i,
				strstr(line(i), "\xe2\x94\xbc") ? "\xe2\x94\xbc" : "\xe2\x94\x82",
				0),
			 col_of(0, "\xe2\x94\x82", 0));
	T_ASSERT(col_of(0, "\xe2\x94\x82", 0) > 0);

	/* Too many columns for the width: one wrapped line per row, nothing lost. */
	render("|a|b|c|d|e|f|g|h|\n|-|-|-|-|-|-|-|-|\n|1|2|3|4|5|6|7|8|", 12);
	T_ASSERT(check_doc(12));
	T_ASSERT(strstr(doc.text, "h") != NULL && strstr(doc.text, "8") != NULL);

	/* A delimiter row that does not match is no table. */
	render("a | b\n---", 40);
	T_ASSERT(strcmp(line(0), "a | b") == 0 && span_of(0, "a")->role == MD_HEADING);
}

/* Whether line i, its blanks at the end left out, is want. */
static bool
line_is(int i, const char *want)
{
	const char *s = line(i);
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == ' ')
		n--;
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* The bits of HTML models write: <br> breaks the line (in a table cell too); autolinks. */
static void
test_html(void)
{
	const struct md_span *sp;

	render("a<br>b <BR/> c <br /> d", 40);
	T_ASSERT(check_doc(40));
	T_EQ_INT(doc.n_lines, 4);
	T_ASSERT(line_is(0, "a") && line_is(1, "b") && line_is(2, "c") && line_is(3, "d"));
	render("| k | v |\n|---|---|\n| x | one<br>two three |\n| y | z |", 40);
	T_ASSERT(check_doc(40));
	T_ASSERT(strstr(line(2), "one") != NULL && strstr(line(2), "two") == NULL);
	T_ASSERT(strstr(line(3), "two three") != NULL && strstr(line(3), "y") == NULL);
	T_EQ_INT(col_of(2, "\xe2\x94\x82", 0), col_of(3, "\xe2\x94\x82", 0)); /* the bar */
	T_ASSERT(strstr(line(4), "y") != NULL);
	render("see <https://example.org/a?b=c> and <not a link> <x:> <br <b>x</b>", 80);
	T_ASSERT(check_doc(80));
	T_ASSERT(line_is(0, "see https://example.org/a?b=c and <not a link> <x:> <br <b>x</b>"));
	sp = span_of(0, "https:");
	T_ASSERT(sp != NULL && sp->role == MD_LINK && (sp->attr & MD_UNDERLINE));
	sp = span_of(0, "<not");
	T_ASSERT(sp != NULL && sp->role == MD_TEXT);
}

static void
test_code(void)
{
	render("Text\n```python\ndef f(x):\n    return 1 # c\n    s = \"str\"\n```\nafter", 40);
	T_ASSERT(check_doc(40));
	T_ASSERT(strcmp(line(1), " python") == 0);
	T_EQ_INT(doc.lines[1].fill, MD_BLOCK);
	T_EQ_INT(span_of(1, "python")->role, MD_LANG);
	T_ASSERT(strcmp(line(2), " def f(x):") == 0);
	T_EQ_INT(doc.lines[2].fill, MD_BLOCK);
	T_EQ_INT(span_of(2, "def")->role, MD_KEYWORD);
	T_EQ_INT(span_of(2, "f(x)")->role, MD_BLOCK);
	T_EQ_INT(span_of(3, "return")->role, MD_KEYWORD);
	T_EQ_INT(span_of(3, "1")->role, MD_NUMBER);
	T_EQ_INT(span_of(3, "# c")->role, MD_COMMENT);
	T_EQ_INT(span_of(4, "\"str\"")->role, MD_STRING);
	T_ASSERT(strcmp(line(5), "after") == 0);
	T_EQ_INT(doc.lines[5].fill, MD_TEXT);

	/* Unterminated (still streaming): code to the end; a block comment spans lines. */
	render("```c\nint x; /* one\ntwo */ return 0x1f;\n\n#include <a.h>", 40);
	T_ASSERT(check_doc(40));
	T_EQ_INT(doc.n_lines, 5);
	T_EQ_INT(span_of(1, "int")->role, MD_KEYWORD);
	T_EQ_INT(span_of(1, "/* one")->role, MD_COMMENT);
	T_EQ_INT(span_of(2, "two */")->role, MD_COMMENT);
	T_EQ_INT(span_of(2, "return")->role, MD_KEYWORD);
	T_EQ_INT(span_of(2, "0x1f")->role, MD_NUMBER);
	T_EQ_INT(span_of(4, "#include")->role, MD_KEYWORD);
	T_EQ_INT(doc.lines[4].fill, MD_BLOCK);

	/* Shell, JSON, Rust, Go, JavaScript: a keyword or literal each. */
	render("```bash\nif [ $# -gt 0 ]; then echo 'x'; fi # done\n```", 60);
	T_EQ_INT(span_of(1, "if")->role, MD_KEYWORD);
	T_EQ_INT(span_of(1, "$#")->role, MD_BLOCK); /* not a comment */
	T_EQ_INT(span_of(1, "# done")->role, MD_COMMENT);
	render("```json\n{\"a\": true, \"n\": -1.5}\n```", 60);
	T_EQ_INT(span_of(1, "\"a\"")->role, MD_STRING);
	T_EQ_INT(span_of(1, "true")->role, MD_KEYWORD);
	T_EQ_INT(span_of(1, "1.5")->role, MD_NUMBER);
	render("```rust\nfn f<'a>(x: &'a str) -> char { 'c' }\n```", 60);
	T_EQ_INT(span_of(1, "fn")->role, MD_KEYWORD);
	T_EQ_INT(span_of(1, "str")->role, MD_KEYWORD); /* 'a is a lifetime, no string */
	T_EQ_INT(span_of(1, "'c'")->role, MD_STRING);
	render("```go\nfunc main() { s := `raw\nstill` }\n```", 60);
	T_EQ_INT(span_of(1, "func")->role, MD_KEYWORD);
	T_EQ_INT(span_of(2, "still`")->role, MD_STRING);
	render("```js\nconst x = `t`; // c\n```", 60);
	T_EQ_INT(span_of(1, "const")->role, MD_KEYWORD);
	T_EQ_INT(span_of(1, "// c")->role, MD_COMMENT);

	/* A long code line is cut at a token boundary, with a marker, never wider. */
	render("```c\nint alpha = beta + gamma + delta + epsilon;\n```", 20);
	T_ASSERT(check_doc(20));
	T_ASSERT(doc.n_lines >= 3);
	T_ASSERT(strstr(line(1), "\xe2\x86\xa9") != NULL);
	T_ASSERT(strcmp(line(1), " int alpha = beta  \xe2\x86\xa9") == 0);
	/* Tabs become spaces to stops of 4. */
	render("```\n\tx\n```", 20);
	T_ASSERT(strcmp(line(1), "     x") == 0);
}

static void
test_copy_code(void)
{
	const char *s = "text\n```sh\necho hi\nls\n```\nmore ``` inline\n"
			"  ```py\n  print(1)\n    x\n  ```\nend\n";
	char *c = md_last_code(s, strlen(s));

	T_ASSERT(c != NULL && strcmp(c, "print(1)\n  x\n") == 0);
	free(c);
	c = md_last_code("a\n```\nfirst\n```\n", 16);
	T_ASSERT(c != NULL && strcmp(c, "first\n") == 0);
	free(c);
	c = md_last_code("```c\nint x;\nstreaming", 21);
	T_ASSERT(c != NULL && strcmp(c, "int x;\nstreaming") == 0);
	free(c);
	T_ASSERT(md_last_code("no code `here`", 14) == NULL);
	T_ASSERT(md_last_code("", 0) == NULL);
}

/* Escape sequences and control bytes anywhere never reach the output. */
static void
test_hostile_bytes(void)
{
	const char *evil = "\x1b[31mred\x1b[0m \x07"
			   "bell \x9b"
			   "c1 \xc2\x9b"
			   "csi \x7f"
			   "del \x1b]52;c;AAAA\x07 \xff\xfe \x00"
			   "x";
	char buf[2048];
	size_t n;

	n = (size_t)snprintf(buf, sizeof(buf),
			     "# %s\n%s *%s*\n- %s\n> %s\n| %s | b |\n|--|--|\n"
			     "| %s | [x](%s) |\n```c\n%s\n```\n`%s`",
			     evil, evil, evil, evil, evil, evil, evil, evil, evil, evil);
	buf[n - 1] = '\0'; /* the NUL in evil cut it short: put one in the middle instead */
	md_render(&doc, buf, strlen(buf), 40);
	T_ASSERT(check_doc(40));
	T_ASSERT(doc.n_lines > 5);
	T_ASSERT(memchr(doc.text, 0x1b, doc.len) == NULL);
	T_ASSERT(strstr(doc.text, "red") != NULL); /* the text itself survives */
	T_ASSERT(strstr(doc.text, "\xef\xbf\xbd[31m") != NULL);
	/* With a NUL byte inside. */
	md_render(&doc, "a\0b\x1b", 4, 10);
	T_ASSERT(check_doc(10));
	T_ASSERT(strcmp(line(0), "a\xef\xbf\xbd"
				 "b\xef\xbf\xbd") == 0);
}

static void
test_hostile_sizes(void)
{
	size_t cap = 4 << 20, n = 0;
	char *s = xmalloc(cap);

	/* A 500-column, 200-row table. */
	for (int r = 0; r < 202; r++) {
		for (int c = 0; c < 500; c++)
			n += (size_t)snprintf(s + n, cap - n, "|%s",
					      r == 1             ? "---"
					      : (c + r) % 7 == 0 ? ZHONG "x"
								 : "cell");
		n += (size_t)snprintf(s + n, cap - n, "|\n");
	}
	for (int w = 1; w <= 121; w += 40) {
		md_render(&doc, s, n, w);
		T_ASSERT(check_doc(w));
		T_ASSERT(doc.n_lines >= 201);
	}

	/* Deep quotes and lists, long words and lines. */
	n = 0;
	for (int i = 0; i < 3000; i++)
		s[n++] = '>';
	n += (size_t)snprintf(s + n, cap - n, " deep\n\n");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(s + n, cap - n, "%*s- level %d\n", i, "", i);
	for (int i = 0; i < 20000; i++)
		s[n++] = i % 3 ? 'a' : '*';
	s[n++] = '\n';
	n += (size_t)snprintf(s + n, cap - n, "```\n");
	for (int i = 0; i < 20000; i++)
		s[n++] = i % 100 ? 'x' : ' ';
	s[n++] = '\n';
	for (int w = 1; w <= 41; w += 4) {
		md_render(&doc, s, n, w);
		T_ASSERT(check_doc(w));
	}
	md_render(&doc, s, n, 30);
	T_ASSERT(strstr(doc.text, "deep") != NULL && strstr(doc.text, "level 299") != NULL);

	/* Inputs that would be quadratic with naive searches: one second is plenty. */
	n = 0;
	for (int i = 0; i < 100000; i++) {
		static const char *const bits[] = { "*a ", "[x ", "`` ", "_b ", "~~c " };

		n += (size_t)snprintf(s + n, cap - n, "%s", bits[i % 5]);
	}
	{
		double t0 = now_sec();

		md_render(&doc, s, n, 80);
		T_ASSERT(check_doc(80));
		T_ASSERT(now_sec() - t0 < 2.0); /* ASan on a busy machine included */
	}
	free(s);
}

/* Random bytes from Markdown's alphabet: every invariant at every width. */
static void
test_random(void)
{
	static const char *const atoms[] = {
		"*",    "**",       "_",    "`",    "```",  "```py\n", "~~~",  "|",   "|---|",
		"\n",   "\n\n",     " ",    "  ",   "\t",   "#",       "# ",   "- ",  "1. ",
		"> ",   "[",        "](",   ")",    "\\",   "a",       "word", ZHONG, THUMB,
		FAMILY, "\xcc\x81", "\x1b", "\xff", "\r\n", ":--:",    "\"",   "'",
	};
	char s[600];
	uint64_t x = 88172645463325252ull;
	bool ok = true;

	for (int iter = 0; iter < 3000 && ok; iter++) {
		size_t n = 0;

		while (n < sizeof(s) - 32) {
			const char *a;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			a = atoms[x % ARRAY_LEN(atoms)];
			if (x % 97 == 0)
				break;
			memcpy(s + n, a, strlen(a));
			n += strlen(a);
		}
		md_render(&doc, s, n, (int)(x % 60));
		ok = check_doc((int)(x % 60));
	}
	T_ASSERT(ok);
}

/* Every prefix of an answer as it streams in renders safely. */
static void
test_streaming(void)
{
	const char *s = "# Plan\n\nFirst **do** this:\n\n1. step `one`\n2. step two\n\n"
			"| k | v |\n|---|---|\n| " ZHONG " | 1 |\n\n```c\nint main(void)\n{\n"
			"\treturn 0; /* ok */\n}\n```\n> done " THUMB "\n";
	bool ok = true;

	for (size_t k = 0; k <= strlen(s) && ok; k++) {
		md_render(&doc, s, k, 24);
		ok = check_doc(24);
	}
	T_ASSERT(ok);
	/* Mid-fence, the code is code. */
	md_render(&doc, s, (size_t)(strstr(s, "(void)") - s), 30);
	T_EQ_INT(doc.lines[doc.n_lines - 1].fill, MD_BLOCK);
	T_EQ_INT(span_of(doc.n_lines - 1, "int")->role, MD_KEYWORD);
}

int
main(void)
{
	if (setlocale(LC_ALL, "C.UTF-8") == NULL)
		setlocale(LC_ALL, "en_US.UTF-8");
	test_blocks();
	test_lists();
	test_table();
	test_html();
	test_code();
	test_copy_code();
	test_hostile_bytes();
	test_hostile_sizes();
	test_random();
	test_streaming();
	md_doc_free(&doc);
	return t_done("test-markdown");
}
