// Two hand-written SQL scanners over JavaScript strings (char indices, not bytes); this file is the
// hub that the rest of pgtenant imports from:
//  - normalizeLiterals() (scan/normalize.ts): the hot-path scanner. It finds every literal (strings,
//    numbers, dollar-quoted strings) and builds a cache key in which each literal is replaced by one
//    marker char that encodes its kind. Two texts with the same key differ only inside literals.
//  - tokenize() (scan/tokenize.ts): the cold-path tokenizer with paren depth, used to find clause
//    boundaries that the parse tree has no locations for (end of a FROM list, of a WHERE/ON expression, …).
//
// Both agree with PostgreSQL's lexer (scan.l, standard_conforming_strings = on) on every token
// boundary and every literal's extent, as compiled into libpg-query 18 (the parser the analyzer
// uses): test/parser/scan-agreement.test.ts and bench/scan-agreement.ts compare them with its
// scanner on generated inputs. The rules they share are in scan/lexer-rules.ts and scan/numbers.ts.
//
// Where PostgreSQL itself and libpg-query disagree, or PostgreSQL versions disagree, the scanners
// fail closed: normalizeLiterals returns key null (the text is never shared) and tokenize throws
// ScanUnsure (the analyzer then refuses the statement):
//  - a string continuation across a `--` comment ('a' -- c\n'b'): PostgreSQL joins the two
//    strings, libpg-query 18 does not;
//  - hex/octal/binary numbers and numbers with `_` (PostgreSQL 15 rejects them, 14 reads `0x1F`
//    as `0 AS x1F`);
//  - lone UTF-16 surrogates (the backend gets U+FFFD, libpg-query's encoder gets other bytes).
// normalizeLiterals also returns key null for U&'…' / U&"…", E'…' with \u \U \x or octal escapes,
// a NUL or a marker char (\x01-\x05) outside a literal, and every text PostgreSQL's lexer rejects
// (unterminated literal, identifier or comment, "" identifier, trailing junk after a number).
//
// Files (parser/scan/):
//   lexer-rules.ts  character classes; comment, string, identifier, dollar-tag and operator ends; flags
//   numbers.ts      numeric literals (longest match over scan.l's number rules)
//   literals.ts     literal kinds (LIT_*), the Normalized result, decodeSimpleLiteral
//   normalize.ts    normalizeLiterals (cache keys)
//   tokenize.ts     tokenize, Token kinds (T_*), ScanUnsure
export { LIT_STRING, LIT_ESTRING, LIT_BITSTRING, LIT_NUMBER, LIT_DOLLAR, LIT_USTRING, decodeSimpleLiteral, type Normalized } from './scan/literals.js'
export { normalizeLiterals } from './scan/normalize.js'
export { tokenize, ScanUnsure, T_WORD, T_QIDENT, T_STRING, T_NUMBER, T_PARAM, T_OP, T_PUNCT, type Token } from './scan/tokenize.js'
