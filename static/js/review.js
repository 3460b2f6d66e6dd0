// Clicking a line number of a gate's diff puts it in that file's comment form, so a reviewer
// comments on a line without typing its number. Without JavaScript the form's number field does it.
(function () {
  "use strict";
  document.addEventListener("click", function (evt) {
    var cell = evt.target.closest && evt.target.closest(".diff-lines td.ln[data-line]");
    if (!cell) return;
    var file = cell.closest(".change-file");
    var form = file && file.querySelector(".line-comment-form");
    if (!form) return;
    form.querySelector("input[name=line]").value = cell.getAttribute("data-line");
    form.querySelector("textarea[name=body]").focus();
  });
})();
