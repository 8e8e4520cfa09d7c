// Search page: runs Pagefind's UI on the ?q= query that the theme's search box submits.
// The index (built by book/_ext/llmbook_search.py) contains one word per CJK character, so
// every query is sent as an exact phrase of characters, punctuation marks and Latin/digit runs.
"use strict";

(() => {
  const CJK = "\\u3400-\\u4dbf\\u4e00-\\u9fff\\uf900-\\ufaff";
  const TOKENS = new RegExp(`[${CJK}]|\\p{P}|[^\\s\\p{P}${CJK}]+`, "gu");
  const EDGE_PUNCTUATION = /^[\p{P}\s]+|[\p{P}\s]+$/gu;
  const ZERO_WIDTH_SPACE = /\u200b/g;

  // Turn the reader's text into Pagefind's exact-phrase syntax: "差 分 隐 私", "gpt - 3".
  // Quotes and other punctuation around the text are dropped, unless nothing else is left.
  function toPhrase(term) {
    let text = term.replace(ZERO_WIDTH_SPACE, "").trim();
    const inner = text.replace(EDGE_PUNCTUATION, "");
    if (inner) {
      text = inner;
    }
    const tokens = text.match(TOKENS) || [];
    return tokens.length ? `"${tokens.join(" ")}"` : term;
  }

  // Pagefind keeps U+200B between the indexed words of Chinese text. It is invisible, but a
  // reader who copies an excerpt would copy it too.
  function tidyResult(result) {
    result.excerpt = result.excerpt.replace(ZERO_WIDTH_SPACE, "");
    if (result.meta && result.meta.title) {
      result.meta.title = result.meta.title.replace(ZERO_WIDTH_SPACE, "");
    }
    return result;
  }

  function keepQueryInAddress(input) {
    input.addEventListener("input", () => {
      const url = new URL(window.location.href);
      if (input.value.trim()) {
        url.searchParams.set("q", input.value);
      } else {
        url.searchParams.delete("q");
      }
      window.history.replaceState(null, "", url);
    });
  }

  window.addEventListener("DOMContentLoaded", () => {
    const query = new URLSearchParams(window.location.search).get("q") || "";
    const ui = new PagefindUI({
      element: "#llmbook-search",
      showImages: false,
      showSubResults: false,
      // More than the book's page count, so every result shows without "load more".
      pageSize: 30,
      // Counted in indexed words, which are single characters in Chinese text.
      excerptLength: 60,
      sort: { order: "asc" },
      autofocus: !query,
      processTerm: toPhrase,
      processResult: tidyResult,
      translations: {
        placeholder: "搜索本书",
        search_label: "搜索本书",
        clear_search: "清除",
        load_more: "显示更多结果",
        searching: "正在搜索“[SEARCH_TERM]”……",
        zero_results: "没有页面包含“[SEARCH_TERM]”",
        one_result: "[COUNT] 个页面包含“[SEARCH_TERM]”",
        many_results: "[COUNT] 个页面包含“[SEARCH_TERM]”",
        error_search: "搜索出错，请刷新本页后重试",
      },
    });
    const input = document.querySelector("#llmbook-search input");
    if (input) {
      keepQueryInAddress(input);
    }
    if (query) {
      ui.triggerSearch(query);
    }
  });
})();
