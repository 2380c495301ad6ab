// grukit serve: typeset the page's mathematics with the KaTeX the package serves (no network).
document.addEventListener("DOMContentLoaded", function () {
  if (typeof renderMathInElement !== "function") {
    return;
  }
  document.querySelectorAll(".math, .math-title").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: [
        {left: "$$", right: "$$", display: true},
        {left: "$", right: "$", display: false}
      ],
      throwOnError: false
    });
  });
});
