// OAuth 2.0 Form Post Response Mode: submit at once; the button is there without JavaScript.
document.getElementById("form-post").submit();
